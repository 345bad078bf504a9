"""Count rate limits and token budgets in the chat store, shared by every instance.

Built on `limits.aio`, on the event loop: a moving window of requests per API key (`RATE_LIMIT`,
e.g. `60/minute`; per client address on a service without keys), another over every request of
a client address (`RATE_LIMIT_PER_ADDRESS`), and a one-day window of upstream tokens per key
(`TOKEN_BUDGET_PER_DAY`; the day starts with the first tokens spent). The counters live in the
chat store: in Redis (Cluster and TLS included) or in the embedded SQLite file, so every
instance or worker process counts against the same limits. `open_quotas` imports this module
only when one of the three is set.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import limits
from limits.aio.storage import Storage
from limits.aio.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter
from limits.errors import StorageError
from limits.util import WindowStats

from chatproxy.config import Settings
from chatproxy.errors import RateLimited, StoreUnavailable, TokenBudgetExhausted
from chatproxy.service.quotas import Identity, Quotas
from chatproxy.store.base import Store
from chatproxy.store.redis import RedisStore
from chatproxy.store.sqlite import SqliteStore
from chatproxy.store.sqlite_limits import SqliteLimitsStorage


class CountedQuotas(Quotas):
    """Counts requests and tokens; raises a 429 error when a caller is over its limit."""

    def __init__(
        self,
        settings: Settings,
        storage: Storage,
        close: Callable[[], Awaitable[None]] | None = None,
    ):
        self._rates = _parse(settings.rate_limit)
        self._address_rates = _parse(settings.rate_limit_per_address)
        self._requests = MovingWindowRateLimiter(storage)
        budget = settings.token_budget_per_day
        self._budget = limits.RateLimitItemPerDay(budget) if budget else None
        self.counts_tokens = self._budget is not None
        self._tokens = FixedWindowRateLimiter(storage)
        self._close = close

    @classmethod
    def in_store(cls, settings: Settings, store: Store) -> CountedQuotas:
        """Keep the counters beside the chats: in the configured Redis, or in the SQLite file."""
        if isinstance(store, SqliteStore):
            longest = max((item.get_expiry() for item in _windows(settings)), default=0)
            return cls(settings, SqliteLimitsStorage(store, longest))
        if isinstance(store, RedisStore) and (shared := store.limits_storage()) is not None:
            return cls(settings, shared)  # the store's connections: the store closes them
        if settings.redis is None or not settings.redis.cluster:
            raise ValueError("the rate limits need the SQLite store, a Redis store, or a cluster")
        from chatproxy.store.redis_limits import open_cluster_limits

        storage, close = open_cluster_limits(settings.redis)
        return cls(settings, storage, close)

    async def admit(self, identity: Identity) -> None:
        """Count one request against RATE_LIMIT for the caller's key (or address)."""
        kind, value = identity
        per = "API key" if kind == "key" else "client address"
        await self._count(self._rates, per, "requests", kind, value)

    async def admit_address(self, address: str) -> None:
        """Count one request of any kind against RATE_LIMIT_PER_ADDRESS."""
        await self._count(self._address_rates, "client address", "address", address)

    async def check_budget(self, tenant: str, worst: int = 0) -> None:
        """Raise `TokenBudgetExhausted` if `tenant` has spent its tokens for the day, or has
        fewer left than `worst` (a call with `n` choices: the refusal names `n`)."""
        if self._budget is None:
            return
        if not worst and await _guarded(self._tokens.test(self._budget, "tokens", tenant)):
            return  # one read, as ever: something is left
        stats = await _guarded(self._tokens.get_window_stats(self._budget, "tokens", tenant))
        budget = f"its budget of {self._budget.amount} tokens for the day"
        if stats.remaining <= 0:
            raise TokenBudgetExhausted(
                f"this key has used {budget}", headers=_headers(self._budget, stats)
            )
        if worst > stats.remaining:
            refused = TokenBudgetExhausted(
                f"n: this request may use {worst} tokens (n times max_tokens), more than the"
                f" {stats.remaining} this key has left of {budget}; ask for fewer choices or a"
                " lower max_tokens",
                headers=_headers(self._budget, stats),
            )
            refused.param = "n"
            raise refused

    async def spend(self, tenant: str, tokens: int) -> None:
        """Count the tokens a turn used against `tenant`'s daily budget."""
        if self._budget is not None and tokens > 0:
            await _guarded(self._tokens.hit(self._budget, "tokens", tenant, cost=tokens))

    async def close(self) -> None:
        """Release the counters' own connections: a cluster's (on a single Redis and on SQLite
        they use the store's, which the store releases)."""
        if self._close is not None:
            await self._close()

    async def _count(self, items: list[limits.RateLimitItem], per: str, *identifiers: str) -> None:
        """Take one request from each window of `items`; raise `RateLimited` at the first that
        is full."""
        for item in items:
            if not await _guarded(self._requests.hit(item, *identifiers)):
                stats = await _guarded(self._requests.get_window_stats(item, *identifiers))
                raise RateLimited(
                    f"rate limit exceeded: {item.amount} requests per {_window(item)} per {per}",
                    headers=_headers(item, stats),
                )


def _parse(limit: str | None) -> list[limits.RateLimitItem]:
    return limits.parse_many(limit) if limit else []


def _windows(settings: Settings) -> list[limits.RateLimitItem]:
    """The moving windows of RATE_LIMIT and RATE_LIMIT_PER_ADDRESS."""
    return [*_parse(settings.rate_limit), *_parse(settings.rate_limit_per_address)]


async def _guarded(call: Awaitable[Any]) -> Any:
    """Await a `limits` call; a storage failure is a store outage (503), not a crash."""
    try:
        return await call
    except StorageError as exc:
        raise StoreUnavailable() from exc


def _headers(item: limits.RateLimitItem, stats: WindowStats) -> dict[str, str]:
    """The standard RateLimit-* headers and Retry-After for a refusal."""
    wait = max(1, math.ceil(stats.reset_time - time.time()))
    return {
        "Retry-After": str(wait),
        "RateLimit-Limit": str(item.amount),
        "RateLimit-Remaining": str(max(0, stats.remaining)),
        "RateLimit-Reset": str(wait),
    }


def _window(item: limits.RateLimitItem) -> str:
    unit = item.GRANULARITY.name
    return unit if item.multiples == 1 else f"{item.multiples} {unit}s"
