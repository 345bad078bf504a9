"""Own the limits on what callers may spend: requests per key and per address, tokens per day.

`Quotas` is what the app and the service call. On its own it stands for a service that sets none
of `RATE_LIMIT`, `RATE_LIMIT_PER_ADDRESS` and `TOKEN_BUDGET_PER_DAY`: it admits every request and
counts nothing. With any of them set, `open_quotas` (in `chatproxy.service`) returns
`counters.CountedQuotas`, which counts in the chat store; only then is the `limits` package
loaded, which would add about 60 ms to every cold start.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable, Mapping
from contextlib import suppress
from typing import Any, Protocol, TypeVar

from chatproxy.errors import StoreError
from chatproxy.tokens import estimate_usage
from chatproxy.upstream_errors import UpstreamError

Identity = tuple[str, str]  # ("key", "web") or ("ip", "203.0.113.7")


class Tallied(Protocol):
    """What a model call answers with: a `Completion` or a `ReplyStream`, which say how many of
    the call's attempts were lost (sent, and never answered)."""

    @property
    def lost_attempts(self) -> int: ...


Answer = TypeVar("Answer", bound=Tallied)


class Quotas:
    """Admits every request and sets no budget; `CountedQuotas` enforces configured limits."""

    counts_tokens = False  # whether a budget (TOKEN_BUDGET_PER_DAY) counts the tokens spent

    async def admit(self, identity: Identity) -> None:
        """Count one request of an authenticated caller against RATE_LIMIT: its key's, or on a
        service without keys its address's; raise `RateLimited` if it is over."""

    async def admit_address(self, address: str) -> None:
        """Count any request from `address` against RATE_LIMIT_PER_ADDRESS; raise `RateLimited`
        if it is over."""

    async def check_budget(self, tenant: str, worst: int = 0) -> None:
        """Raise `TokenBudgetExhausted` if `tenant` has spent its tokens for the day, or has
        fewer left than `worst`, what a call with `n` choices may use (n times its max_tokens)."""

    async def spend(self, tenant: str, tokens: int) -> None:
        """Count the tokens a turn used against `tenant`'s daily budget."""

    async def spend_estimate(
        self, tenant: str, sent: Iterable[Mapping[str, Any]], text: str = "", tools: int = 0
    ) -> None:
        """Count the estimate of a model call that ended before its usage came (it comes last):
        the provider was sent the prompt and bills it. `tokens.estimate_usage` of the messages
        `sent`, the tool definitions sent beside them (`tools`: their estimated tokens) and the
        `text` read; a store away then is not the caller's concern (it is told of the call's
        own failure)."""
        with suppress(StoreError):
            await self.spend(tenant, estimate_usage(sent, text, tools)["total_tokens"])

    async def counting_lost(
        self,
        tenant: str,
        sent: Iterable[Mapping[str, Any]],
        call: Awaitable[Answer],
        tools: int = 0,
    ) -> Answer:
        """Await the model call `call` of the messages `sent` (with tool definitions of `tools`
        estimated tokens), and count the attempts it lost (`lost_attempts`, told with its
        answer or its error), once, whether it answers or fails: each was sent and never
        answered (it timed out, or its connection broke), and the provider may have billed it.
        Each counts as a stream that broke off before any of its text: the estimate of `sent`
        and `tools` (`spend_estimate`). A call that lost none counts nothing here; its answer's
        usage is counted by the caller."""
        try:
            answer = await call
        except UpstreamError as exc:
            if exc.lost_attempts:
                await self._spend_lost(tenant, sent, tools, exc.lost_attempts)
            raise
        if answer.lost_attempts:
            await self._spend_lost(tenant, sent, tools, answer.lost_attempts)
        return answer

    async def _spend_lost(
        self, tenant: str, sent: Iterable[Mapping[str, Any]], tools: int, attempts: int
    ) -> None:
        with suppress(StoreError):
            await self.spend(tenant, attempts * estimate_usage(sent, "", tools)["total_tokens"])

    async def close(self) -> None:
        """Release the counters' connections."""
