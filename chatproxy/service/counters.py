"""Count rate limits and token budgets in the chat store, shared by every instance.

Built on the `limits` package: a moving window of requests per API key and per client address
(`RATE_LIMIT`, e.g. `60/minute`), and a one-day window of upstream tokens per key
(`TOKEN_BUDGET_PER_DAY`; the day starts with the first tokens spent). The counters live in the
chat store: in Redis (Cluster and TLS included) or in the embedded SQLite file, so every instance
or worker process counts against the same limits. `limits` is blocking here: each count runs in
a worker thread, off the event loop. `open_quotas` imports this module only when one of
the two is set.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any
from urllib.parse import urlsplit

import limits
from limits.errors import StorageError
from limits.storage import Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter
from redis import BlockingConnectionPool

from chatproxy.config import RedisSettings, Settings
from chatproxy.errors import RateLimited, StoreUnavailable, TokenBudgetExhausted
from chatproxy.service.quotas import Identity, Quotas
from chatproxy.store import AsyncStore
from chatproxy.store.redis import WaitingQueue
from chatproxy.store.sqlite import SqliteStore
from chatproxy.store.sqlite_limits import SqliteLimitsStorage
from chatproxy.store.threaded import ThreadedStore


class CountedQuotas(Quotas):
    """Counts requests and tokens; raises a 429 error when a caller is over its limit."""

    def __init__(self, settings: Settings, storage: Storage):
        self._rates = limits.parse_many(settings.rate_limit) if settings.rate_limit else []
        self._requests = MovingWindowRateLimiter(storage)
        budget = settings.token_budget_per_day
        self._budget = limits.RateLimitItemPerDay(budget) if budget else None
        self._tokens = FixedWindowRateLimiter(storage)
        self._storage = storage

    @classmethod
    def in_store(cls, settings: Settings, store: AsyncStore) -> CountedQuotas:
        """Keep the counters beside the chats: in the configured Redis, or in the SQLite file."""
        if isinstance(store, ThreadedStore) and isinstance(store.blocking, SqliteStore):
            return cls(settings, SqliteLimitsStorage(store.blocking))
        if settings.redis is None:
            raise ValueError("a store other than SQLite needs Redis settings for its limits")
        uri, options = _redis_storage(settings.redis)
        storage = storage_from_string(uri, wrap_exceptions=True, **options)
        assert isinstance(storage, Storage)  # a sync storage: the URI has no async+ scheme
        return cls(settings, storage)

    async def admit(self, identities: list[Identity]) -> None:
        """Count one request for each identity; raise `RateLimited` if any is over its limit."""
        for item in self._rates:
            for kind, value in identities:
                if not await _guarded(self._requests.hit, item, "requests", kind, value):
                    stats = await _guarded(
                        self._requests.get_window_stats, item, "requests", kind, value
                    )
                    raise RateLimited(
                        f"rate limit exceeded: {item.amount} requests per {_window(item)} per"
                        f" {'API key' if kind == 'key' else 'client address'}",
                        headers=_headers(item, stats),
                    )

    async def check_budget(self, tenant: str) -> None:
        """Raise `TokenBudgetExhausted` if `tenant` has spent its tokens for the day."""
        if self._budget is None:
            return
        if not await _guarded(self._tokens.test, self._budget, "tokens", tenant):
            stats = await _guarded(self._tokens.get_window_stats, self._budget, "tokens", tenant)
            raise TokenBudgetExhausted(
                f"this key has used its budget of {self._budget.amount} tokens for the day",
                headers=_headers(self._budget, stats),
            )

    async def spend(self, tenant: str, tokens: int) -> None:
        """Count the tokens a turn used against `tenant`'s daily budget."""
        if self._budget is not None and tokens > 0:
            await _guarded(self._tokens.hit, self._budget, "tokens", tenant, cost=tokens)


async def _guarded(call: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a (blocking) `limits` call in a worker thread; a storage failure is a store outage
    (503), not a crash."""
    try:
        return await asyncio.to_thread(call, *args, **kwargs)
    except StorageError as exc:
        raise StoreUnavailable() from exc


def _headers(item: limits.RateLimitItem, stats: Any) -> dict[str, str]:
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


def _redis_storage(redis: RedisSettings) -> tuple[str, dict[str, Any]]:
    """Point `limits` at the same Redis as the chats, with the same TLS, timeouts and bounded
    blocking connection pool (see `store.redis.connect`). On a cluster `limits` builds the node
    clients itself, with its own pools (up to 1000 connections per node)."""
    options: dict[str, Any] = {
        "socket_timeout": redis.socket_timeout,
        "socket_connect_timeout": redis.socket_timeout,
    }
    if redis.ca_cert:
        options["ssl_ca_certs"] = redis.ca_cert
    if not redis.cluster:
        pool = BlockingConnectionPool.from_url(
            redis.url,
            max_connections=redis.max_connections,
            timeout=redis.socket_timeout,
            queue_class=WaitingQueue,
            **options,
        )
        return redis.url, {"connection_pool": pool}
    parts = urlsplit(redis.url)
    if redis.ssl:
        options["ssl"] = True
    return f"redis+cluster://{parts.netloc}", options
