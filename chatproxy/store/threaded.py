"""The name `service/counters.py` still imports: delete this module when its rate limits move to
`limits.aio` (the SQLite store runs its calls in worker threads itself now)."""

from chatproxy.store.sqlite import SqliteStore as ThreadedStore

__all__ = ["ThreadedStore"]
