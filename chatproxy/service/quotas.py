"""Own the limits on what callers may spend: requests per key and address, tokens per day.

`Quotas` is what the app and the service call. On its own it stands for a service that sets
neither `RATE_LIMIT` nor `TOKEN_BUDGET_PER_DAY`: it admits every request and counts nothing. With
either set, `open_quotas` (in `chatproxy.service`) returns `counters.CountedQuotas`, which counts
in the chat store; only then is the `limits` package loaded, which would add about 60 ms to every
cold start.
"""

from __future__ import annotations

Identity = tuple[str, str]  # ("key", "web") or ("ip", "203.0.113.7")


class Quotas:
    """Admits every request and sets no budget; `CountedQuotas` enforces configured limits."""

    async def admit(self, identities: list[Identity]) -> None:
        """Count one request for each identity; raise `RateLimited` if any is over its limit."""

    async def check_budget(self, tenant: str) -> None:
        """Raise `TokenBudgetExhausted` if `tenant` has spent its tokens for the day."""

    async def spend(self, tenant: str, tokens: int) -> None:
        """Count the tokens a turn used against `tenant`'s daily budget."""
