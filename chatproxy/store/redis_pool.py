"""Own the queue of free connections for blocking redis-py pools (the rate-limit counters' pool
to the chats' Redis)."""

from __future__ import annotations

from queue import Empty, LifoQueue
from typing import Any

from redis.exceptions import MaxConnectionsError


class WaitingQueue(LifoQueue[Any]):
    """The free connections of a blocking pool. A wait for one that times out raises
    MaxConnectionsError, as redis-py's own pool does when full: the plain ConnectionError a
    BlockingConnectionPool raises instead makes a cluster client take the node for failed,
    drop its connections and read the cluster's topology again, on every such wait."""

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        try:
            return super().get(block, timeout)
        except Empty:
            if not block:
                raise
            raise MaxConnectionsError("no Redis connection came free in time") from None
