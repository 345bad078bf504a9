"""Own the Redis side of summaries (compaction: `Store.load_unsummarized`, `save_summary`,
`load_summaries`, and the claim under which one is made: `claim_summary`, `release_summary`):
`RedisSummaries`, which `RedisStore` builds on, its Lua scripts, and what it sends them and
makes of their answers. It declares what it uses of `RedisCalls`, as `RedisChats` does, so
that `redis.py` stays one import above `redis_calls.py`. A path's read finds the summaries of
its items itself (`redis_read_scripts.py`'s PATH_SUMMARIES).

A summary is kept in the chat's `:kids` hash as `s<id>`, by the last item it covers
(`redis_keys.py`), so it shares the chat's TTL, deletion and slot. Like every script on a chat,
each is given the chat's four keys and starts with `UPGRADE`. The claim is a key of its own in
the chat's slot, `:summarizing`, which holds its holder's token for a lease (SET NX PX), and is
released by compare-and-delete, as the turn lock is.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from chatproxy.errors import NotFound
from chatproxy.jsontext import compact
from chatproxy.store.decoding import DecodedMessages
from chatproxy.store.items import ChatRef, Unsummarized
from chatproxy.store.redis_keys import chat_keys, claim_key, millis
from chatproxy.store.redis_scripts import RELEASE_TURN, UPGRADE
from chatproxy.store.summary import Summary

if TYPE_CHECKING:  # for annotations: at run time it would lengthen the store's import chain
    from chatproxy.store.redis_calls import Run

# The fence of a summary being written: which chat (its creation) and how many removals of
# items it had seen.
FENCE = """
local function fence()
  local seen = redis.call('HMGET', KEYS[2], 'created', 'pruned', 'sums')
  return (seen[1] or '') .. ':' .. (seen[2] or '0'), seen[3]
end
"""

LOAD_UNSUMMARIZED = (
    UPGRADE
    + FENCE
    + """
-- KEYS: items, meta, kids, old list   ARGV: the last item, most items to read, most to pass
-- Returns {'missing'} if the chat does not hold the item, else the fence, the newest summary
-- met walking up from the item (false: none), the items after it, oldest first, 1 if the walk
-- passed items it did not read to meet it, and the item a walk that met none stopped short of.
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return {'missing'} end
local seen, sums = fence()
local items, id, n, summary = {}, ARGV[1], 0, false
local limit = tonumber(ARGV[2])
while id and n < limit do
  if sums then
    summary = redis.call('HGET', KEYS[3], 's' .. id)
    if summary then break end
  end
  local raw = redis.call('HGET', KEYS[1], id)
  if not raw then break end
  n = n + 1
  items[n] = raw
  id = string.match(raw, PARENT)
end
for i = 1, math.floor(n / 2) do
  items[i], items[n + 1 - i] = items[n + 1 - i], items[i]
end
-- Past the limit, on up to the summary (parents only), at most ARGV[3] items a call.
local passed, above = 0, false
if sums and not summary and n == limit then
  local reach = tonumber(ARGV[3])
  while id do
    summary = redis.call('HGET', KEYS[3], 's' .. id)
    if summary then break end
    local raw = redis.call('HGET', KEYS[1], id)
    if not raw then break end
    if passed == reach then
      above = id
      break
    end
    passed = passed + 1
    id = string.match(raw, PARENT)
  end
end
return {seen, summary, items, (summary and passed > 0) and 1 or 0, above}
"""
)

SAVE_SUMMARY = (
    UPGRADE
    + FENCE
    + """
-- KEYS: items, meta, kids, old list   ARGV: fence, the last item, the summary, ttl (0 = none)
-- Returns 1 if kept, 0 if the chat no longer holds the item or the fence changed.
if fence() ~= ARGV[1] or redis.call('HEXISTS', KEYS[1], ARGV[2]) == 0 then return 0 end
redis.call('HSET', KEYS[3], 's' .. ARGV[2], ARGV[3])
redis.call('HSET', KEYS[2], 'sums', 1)
local ttl = tonumber(ARGV[4])
for i = 1, 3 do
  if ttl > 0 then redis.call('EXPIRE', KEYS[i], ARGV[4]) else redis.call('PERSIST', KEYS[i]) end
end
return 1
"""
)

CLAIM_SUMMARY = """
-- KEYS: the claim   ARGV: token, lease (ms)
-- Returns 1 if the token holds the claim now (taken, or taken again by its holder: renewed).
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

# By the name `RedisStore` runs them under; a claim is released as a turn's lock is.
SUMMARY_SCRIPTS = {
    "load_unsummarized": LOAD_UNSUMMARIZED,
    "save_summary": SAVE_SUMMARY,
    "claim_summary": CLAIM_SUMMARY,
    "release_summary": RELEASE_TURN,
}


async def load_unsummarized(
    run: Run, keys: list[str], walk: tuple[int, int, int], decoded: DecodedMessages
) -> Unsummarized:
    """`Store.load_unsummarized` on the chat's `keys`, `walk` its `at`, `limit` and `reach`."""
    read = await run("load_unsummarized", keys, [], list(walk))
    if read[0] == "missing":
        raise NotFound("no such message in this chat")
    fence, summary, raws, unread, above = read
    found = Summary.from_json(json.loads(summary)) if summary else None
    messages = decoded.decode(raws)
    return Unsummarized(found, messages, str(fence), bool(unread), int(above) if above else None)


async def save_summary(
    run: Run, keys: list[str], summary: Summary, fence: str, ttl: int | None
) -> bool:
    """`Store.save_summary` on the chat's `keys`."""
    args = [fence, summary.last, compact(summary.to_json()), ttl or 0]
    return bool(await run("save_summary", keys, [], args))


def summaries_of(ids: Sequence[int], found: Sequence[str | None]) -> dict[int, Summary]:
    """The summaries an HMGET of `s<id>` for each of `ids` found, by id."""
    return {
        item: Summary.from_json(json.loads(raw))
        for item, raw in zip(ids, found, strict=True)
        if raw
    }


class RedisSummaries:
    """A chat's summaries in Redis, on the calls of `RedisCalls`."""

    LUA: ClassVar[Mapping[str, str]] = SUMMARY_SCRIPTS

    # What it uses of `RedisCalls`, which `RedisStore` builds on beside it.
    _ttl: int | None
    _script: Run
    _command: Callable[..., Awaitable[Any]]
    decoded: DecodedMessages

    async def load_unsummarized(
        self, chat: ChatRef, at: int, limit: int, reach: int = 0
    ) -> Unsummarized:
        keys = [*chat_keys(chat)]
        return await load_unsummarized(self._script, keys, (at, limit, reach), self.decoded)

    async def save_summary(self, chat: ChatRef, summary: Summary, fence: str) -> bool:
        return await save_summary(self._script, [*chat_keys(chat)], summary, fence, self._ttl)

    async def load_summaries(self, chat: ChatRef, ids: Sequence[int]) -> dict[int, Summary]:
        if not ids:
            return {}
        found = await self._command("hmget", chat_keys(chat)[2], [f"s{item}" for item in ids])
        return summaries_of(ids, found)

    async def claim_summary(self, chat: ChatRef, token: str, lease_seconds: float) -> bool:
        args = [token, millis(lease_seconds)]
        return bool(await self._script("claim_summary", [claim_key(chat)], [], args))

    async def release_summary(self, chat: ChatRef, token: str) -> None:
        await self._script("release_summary", [claim_key(chat)], [], [token])
