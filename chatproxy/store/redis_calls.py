"""Own how the Redis store talks to Redis (`RedisCalls`, which `RedisStore` builds on): its
client, its scripts loaded by name, its bound on calls in flight, and a call, a script (with the
keys beside a chat's slot on a single node) or a pipeline sent within that bound."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar, Self

from redis.asyncio.cluster import RedisCluster

from chatproxy.config import RedisSettings
from chatproxy.errors import Conflict
from chatproxy.store.decoding import DecodedMessages
from chatproxy.store.redis_client import CallSlots, Client, ScriptRunner, connect
from chatproxy.store.windows import KnownWindows

Pipeline = Any  # a redis.asyncio pipeline of either topology

# `RedisCalls._script`: a script by name, the chat's keys, the keys beside them, the arguments.
Run = Callable[[str, list[str], list[str], list[Any]], Awaitable[Any]]

# How often `RedisCalls._declaring` runs a script again with the keys it asked for.
DECLARE_TRIES = 8


class RedisCalls:
    """A Redis client as the store uses it, for coroutines of one event loop."""

    LUA: ClassVar[Mapping[str, str]] = {}  # the Lua scripts, by the name `_script` runs them

    def __init__(
        self,
        client: Client,
        ttl_seconds: int | None,
        max_messages: int = 0,
        *,
        max_calls: int = 100,
        wait_seconds: float = 2.0,
    ):
        """`max_calls` and `wait_seconds` bound the calls in flight (see `CallSlots`)."""
        self._redis = client
        self._cluster = isinstance(client, RedisCluster)
        self._ttl = ttl_seconds
        self._max_messages = max_messages
        scripts = self.LUA.items()
        self._scripts = {name: client.register_script(lua) for name, lua in scripts}
        self._slots = CallSlots(max_calls, wait_seconds)
        self._runner = None if isinstance(client, RedisCluster) else ScriptRunner(client)
        self._windows = KnownWindows(max_chats=1024, max_chars=2_000_000)
        self.decoded = DecodedMessages()

    @classmethod
    def from_settings(
        cls, settings: RedisSettings, ttl_seconds: int | None, max_messages: int = 0
    ) -> Self:
        """Build the store and its client from the Redis settings."""
        return cls(
            connect(settings),
            ttl_seconds,
            max_messages,
            max_calls=settings.max_connections,
            wait_seconds=settings.socket_timeout,
        )

    async def ping(self) -> None:
        await self._command("ping")

    async def close(self) -> None:
        try:
            if self._runner is not None:
                await self._runner.aclose()
        finally:
            await self._redis.aclose()

    async def _script(self, name: str, keys: list[str], beside: list[str], args: list[Any]) -> Any:
        """Run a script on the chat's `keys`, and on a single node also on the keys `beside` the
        chat's slot that it reads or writes when given them (a cluster refuses those in one
        script: its caller handles them in another call).

        One EVALSHA: the script is loaded only when Redis answers NOSCRIPT.
        """
        async with self._slots.call():
            if self._runner is not None:
                return await self._runner.run(self._scripts[name], keys + beside, args)
            return await self._scripts[name](keys=keys, args=args)  # a cluster's

    async def _declaring(
        self, name: str, keys: list[str], beside: list[str], args: list[Any]
    ) -> Any:
        """Run a script that also touches keys of the chat's slot it finds as it runs (the
        idempotency records that `:idems` links, redis_idem_scripts.py), given after `keys`,
        their count its first argument: until it is given them all it answers `again` and
        those keys before it changes anything (but `UPGRADE`, which changes nothing when run
        again), and is run again with them. Each try takes in the keys that other turns' saves
        added meanwhile; after `DECLARE_TRIES`, `Conflict`."""
        found: list[str] = []
        for _ in range(DECLARE_TRIES):
            answer = await self._script(name, [*keys, *found], beside, [len(found), *args])
            if not (isinstance(answer, list) and answer[:1] == ["again"]):
                return answer
            found = answer[1:]
        raise Conflict("the chat's turns kept adding to it meanwhile; try again")

    async def _command(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Send one command, by its redis-py method name."""
        async with self._slots.call():
            return await getattr(self._redis, name)(*args, **kwargs)

    async def _execute(self, pipe: Pipeline) -> list[Any]:
        """Send a pipeline's commands; return their answers."""
        async with self._slots.call():
            return list(await pipe.execute())
