"""Own the Redis side of whole chats (`Store.load_tree`, `Store.save_tree`): the two Lua scripts
and what `redis.py` sends them and makes of their answers.

Both start with `UPGRADE` (a chat of the layout before trees is read as items) and touch only
the chat's keys, the tenant's listing beside them on a single node. A chat is written whole in
one script: its keys are removed and written again, each item's text as `Message.dumps` wrote
it (so its id and parent lead it), and `:kids` by `add_child`, which leaves out a child
numbered right after its parent, as every other script does. The finished idempotency records
of the chat written over go in the same step, as a chat's deletion takes them
(`redis_idem_scripts.py`): a retry must not replay what it no longer holds.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from chatproxy.errors import ChatBusy
from chatproxy.jsontext import compact
from chatproxy.store.chat_tree import ChatTree, check_size
from chatproxy.store.decoding import DecodedMessages
from chatproxy.store.redis_idem_scripts import LINKED
from chatproxy.store.redis_scripts import REFRESH, UPGRADE
from chatproxy.store.summary import Summary
from chatproxy.tokens import USAGE_FIELDS

if TYPE_CHECKING:  # for annotations: at run time it would lengthen the store's import chain
    from chatproxy.store.redis_calls import Run

LOAD_TREE = (
    UPGRADE
    + """
-- KEYS: items, meta, kids, old list, and on a single node the tenant's listing
-- ARGV: ttl (0 = none)
-- Returns the meta hash (field, value, ...), every item's stored text and every summary's, or
-- false for no chat; refreshes the TTL (the listing's too, which outlives its chats).
local meta = redis.call('HGETALL', KEYS[2])
if #meta == 0 then return false end
local items = redis.call('HVALS', KEYS[1])
local sums = {}
if redis.call('HEXISTS', KEYS[2], 'sums') == 1 then
  local kids = redis.call('HGETALL', KEYS[3])
  for i = 1, #kids, 2 do
    if string.sub(kids[i], 1, 1) == 's' then sums[#sums + 1] = kids[i + 1] end
  end
end
if tonumber(ARGV[1]) > 0 then
  for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ARGV[1]) end
  if KEYS[5] then redis.call('EXPIRE', KEYS[5], ARGV[1]) end
end
return {meta, items, sums}
"""
)

SAVE_TREE = (
    UPGRADE
    + REFRESH
    + LINKED
    + """
-- KEYS: items, meta, kids, old list, lock, the links of the chat's idempotency records
--       (`:idems`), the records declared (ARGV[1] of them), and on a single node the tenant's
--       listing
-- ARGV: how many records are declared, replace ('1' or '0'), ttl (0 = none), chat id, updated
--       (the listing's score), n, then n texts: the meta hash's fields and values, then m, then
--       m texts: `:kids`'s field and value of each summary, then each item's stored text in id
--       order
-- Returns 1 when written, 0 when the chat exists (and not replace), -1 while a turn holds it,
-- or `again` (LINKED). The chat's finished records go: they answered with what it held.
if redis.call('EXISTS', KEYS[2]) == 1 and ARGV[2] ~= '1' then return 0 end
if redis.call('EXISTS', KEYS[5]) == 1 then return -1 end
local _, records, missing = linked(6, nil)
if missing then return again(records) end
forget(records)
redis.call('DEL', KEYS[6])
-- A summary being written of the chat replaced is fenced off (redis_summaries.py: FENCE).
local pruned = redis.call('EXISTS', KEYS[2]) == 1 and (redis.call('HGET', KEYS[2], 'pruned') or 0)
-- Ids handed out stay handed out: a fork that set some aside saves on them later.
local appended = tonumber(redis.call('HGET', KEYS[2], 'appended') or 0)
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
local n = tonumber(ARGV[6])
redis.call('HSET', KEYS[2], unpack(ARGV, 7, 6 + n))
if pruned then redis.call('HSET', KEYS[2], 'pruned', tonumber(pruned) + 1) end
if appended > tonumber(redis.call('HGET', KEYS[2], 'appended')) then
  redis.call('HSET', KEYS[2], 'appended', appended)
end
local m = tonumber(ARGV[7 + n])
for i = 8 + n, 7 + n + m, 2 do  -- one at a time: unpack stops at a few thousand values
  redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
end
local first = 8 + n + m <= #ARGV and tonumber((string.match(ARGV[8 + n + m], PLACED)))
for i = 8 + n + m, #ARGV do
  local id, parent = string.match(ARGV[i], PLACED)
  redis.call('HSET', KEYS[1], id, ARGV[i])
  -- One under an item MAX_CHAT_MESSAGES dropped (below the first) starts a path (CHILDREN).
  add_child((parent ~= 'null' and tonumber(parent) < first) and 'null' or parent, id)
end
refresh(ARGV[3], ARGV[5], ARGV[4], KEYS[7 + tonumber(ARGV[1])])
return 1
"""
)

# By the name `RedisStore` runs them under.
TREE_SCRIPTS = {"load_tree": LOAD_TREE, "save_tree": SAVE_TREE}


async def load_tree(
    run: Run,
    keys: list[str],
    listing: str,
    chat_id: str,
    ttl: int | None,
    decoded: DecodedMessages,
) -> ChatTree | None:
    """Read the whole chat of `keys` (`redis_keys.chat_keys`) in one script, refreshing its
    TTL and its tenant's `listing`'s; None if it does not exist."""
    read = await run("load_tree", keys, [listing], [ttl or 0])
    if not read:
        return None
    pairs, raws, sums = read
    meta = dict(zip(pairs[::2], pairs[1::2], strict=True))
    summaries = [Summary.from_json(json.loads(raw)) for raw in sums]
    items = sorted(decoded.decode(raws), key=lambda item: item.id or 0)
    return ChatTree(
        chat_id=chat_id,
        created=float(meta.get("created", 0)),
        updated=float(meta.get("updated", 0)),
        items=items,
        leaf=int(meta["leaf"]) if meta.get("leaf") else None,
        title=meta.get("title"),
        system=meta.get("system"),
        settings=json.loads(meta["settings"]) if meta.get("settings") else {},
        metadata=json.loads(meta["metadata"]) if "metadata" in meta else None,
        tokens={name: int(meta.get(name, 0)) for name in USAGE_FIELDS},
        summaries=sorted(summaries, key=lambda summary: summary.last),
    )


async def save_tree(
    run: Run,
    keys: list[str],
    listing: str,
    chat_id: str,
    tree: ChatTree,
    *,
    replace: bool,
    ttl: int | None,
    most: int,
) -> bool:
    """Write the whole chat `chat_id` (see `Store.save_tree`) in one script on its `keys` (the
    chat's, its lock and its records' links), run by `RedisCalls._declaring`, and its tenant's
    `listing`; whether it was written."""
    check_size(tree, most)
    fields = _meta_fields(tree)
    args: list[Any] = ["1" if replace else "0", ttl or 0, chat_id, repr(tree.updated)]
    sums = [text for s in tree.summaries for text in (f"s{s.last}", compact(s.to_json()))]
    args += [len(fields), *fields, len(sums), *sums, *(item.dumps() for item in tree.items)]
    saved = await run("save_tree", keys, [listing], args)
    if saved == -1:
        raise ChatBusy()
    return bool(saved)


def _meta_fields(tree: ChatTree) -> list[str]:
    """The chat's meta hash, as field, value, ... (`redis_keys` lists its fields)."""
    meta: dict[str, str] = {
        "created": repr(tree.created),
        "updated": repr(tree.updated),
        "messages": str(len(tree.items)),
        "appended": str(tree.next_id),
    }
    if tree.items:
        meta["first"] = str(min(item.id or 0 for item in tree.items))
    optional = {
        "leaf": None if tree.leaf is None else str(tree.leaf),
        "title": tree.title,
        "system": tree.system,
        "settings": compact(tree.settings) if tree.settings else None,
        "metadata": None if tree.metadata is None else compact(tree.metadata),
    }
    meta.update({name: value for name, value in optional.items() if value is not None})
    if tree.summaries:
        meta["sums"] = "1"
    meta.update({name: str(tree.tokens.get(name, 0)) for name in USAGE_FIELDS})
    return [text for pair in meta.items() for text in pair]
