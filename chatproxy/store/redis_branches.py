"""Own the Redis side of a chat's branches (`Store.children` and `first_messages`,
`Store.set_leaf`): the two Lua scripts and what `redis.py` sends them and makes of their
answers, with the rules of `redis_scripts.py`: the chat's four keys first, `UPGRADE` first.

`:kids` lists a parent's children but the one numbered right after it, which a linear chat
always has (`add_child`): both scripts find that one by the parent its own text starts with.
Under `root` it also lists the items whose parent trimming dropped, which a chat trimmed by the
releases before has listed once its first messages are read (`list_starts`). A path's read
that answers its messages' versions (`redis_read_scripts.py`'s READ_CHAT) lists them with the
same Lua functions (`LIST_CHILDREN`), in the same script.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from chatproxy.errors import ChatBusy, NotFound
from chatproxy.store.redis_scripts import UPGRADE

if TYPE_CHECKING:  # for annotations: at run time it would lengthen the store's import chain
    from chatproxy.store.redis_calls import Run

# The Lua functions that list children, for CHILDREN and for a path's read that answers its
# messages' versions (READ_CHAT). `list_starts` lists under 'root' every item whose parent is
# below `first` (the lowest id kept), once for a chat trimmed before trimming listed them: until
# then it deleted the `:kids` of the items it dropped, so of their children only the first kept
# was found (by itself), the others were no one's. `starts` in the meta says the chat was
# checked; one never trimmed (first 0) needs none. `children_of` answers an item's children (or
# 'root': the first messages), comma separated, false for none.
LIST_CHILDREN = """
local function list_starts(first, checked)
  if first == '0' or checked then return end
  local lowest, starts, seen = tonumber(first), {}, {}
  for kid in string.gmatch(redis.call('HGET', KEYS[3], 'root') or '', '%d+') do
    if tonumber(kid) >= lowest then
      seen[kid] = true
      starts[#starts + 1] = tonumber(kid)
    end
  end
  local listed = #starts
  for _, raw in ipairs(redis.call('HVALS', KEYS[1])) do
    local id, up = string.match(raw, PLACED)
    if up and up ~= 'null' and tonumber(up) < lowest and id ~= first and not seen[id] then
      seen[id] = true
      starts[#starts + 1] = tonumber(id)
    end
  end
  if #starts > listed then
    table.sort(starts)
    redis.call('HSET', KEYS[3], 'root', table.concat(starts, ','))
  end
  redis.call('HSET', KEYS[2], 'starts', 1)
end
local function children_of(field, first)
  local kids = redis.call('HGET', KEYS[3], field)
  -- The child numbered right after its parent is found by its own parent (see add_child); the
  -- first messages' is the lowest id kept, a first one if its parent is none or was dropped.
  local next_one = field == 'root' and first or tostring(tonumber(field) + 1)
  local raw = redis.call('HGET', KEYS[1], next_one)
  local _, up = false, false
  if raw then _, up = string.match(raw, PLACED) end
  local listed = kids and string.find(',' .. kids .. ',', ',' .. next_one .. ',', 1, true)
  local starts = field == 'root' and up and (up == 'null' or tonumber(up) < tonumber(first))
  if (up == field or starts) and not listed then
    kids = kids and (next_one .. ',' .. kids) or next_one
  end
  return kids or false
end
"""

CHILDREN = (
    UPGRADE
    + LIST_CHILDREN
    + """
-- KEYS: items, meta, kids, old list, and on a single node the tenant's listing
-- ARGV: ttl (0 = none), strict ('1': none of the items may be missing), then item ids ('root'
--       for the first messages)
-- Returns the lowest id kept (children below it were dropped by trimming), then each one's
-- children, comma separated (false for none), then how many messages the chat holds; refreshes
-- the TTL (the listing's too). Strict, returns {'missing'} for an item the chat does not hold,
-- and refreshes nothing.
if ARGV[2] == '1' then
  for i = 3, #ARGV do
    if ARGV[i] ~= 'root' and redis.call('HEXISTS', KEYS[1], ARGV[i]) == 0 then
      return {'missing'}
    end
  end
end
local found, meta = {}, redis.call('HMGET', KEYS[2], 'first', 'starts', 'messages')
local first = meta[1] or '0'
for i = 3, #ARGV do
  if ARGV[i] == 'root' then list_starts(first, meta[2]) break end
end
if tonumber(ARGV[1]) > 0 then
  for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ARGV[1]) end
  if KEYS[5] then redis.call('EXPIRE', KEYS[5], ARGV[1]) end
end
for i = 3, #ARGV do
  found[i - 2] = children_of(ARGV[i], first)
end
return {first, found, tonumber(meta[3] or 0)}
"""
)

SET_LEAF = (
    UPGRADE
    + """
-- KEYS: items, meta, kids, old list, lock, and on a single node the tenant's listing
-- ARGV: item id, descend ('1': on to its newest descendant by always taking the newest child),
-- ttl (0 = none)
-- Returns the new leaf, false if the chat does not hold the item, or -1 while a turn holds the
-- chat's lock (its save would move the leaf again); a move refreshes the TTL (the listing's
-- too). Windows known by the last turn
-- (windows.py) are known by their last item too, so they no longer count once the leaf moves.
local id = ARGV[1]
if redis.call('HEXISTS', KEYS[1], id) == 0 then
  return false
end
if redis.call('EXISTS', KEYS[5]) == 1 then
  return -1
end
while ARGV[2] == '1' do
  local kids = redis.call('HGET', KEYS[3], id)
  local newest = kids and string.match(kids, '(%d+)$')
  if not newest then  -- only the child numbered after it, if it has one (see add_child)
    local raw = redis.call('HGET', KEYS[1], tonumber(id) + 1)
    local _, up = false, false
    if raw then _, up = string.match(raw, PLACED) end
    newest = up == id and tostring(tonumber(id) + 1)
  end
  if not newest or redis.call('HEXISTS', KEYS[1], newest) == 0 then break end
  id = newest
end
redis.call('HSET', KEYS[2], 'leaf', id)
if tonumber(ARGV[3]) > 0 then
  for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ARGV[3]) end
  if KEYS[6] then redis.call('EXPIRE', KEYS[6], ARGV[3]) end
end
return tonumber(id)
"""
)

# By the name `RedisStore` runs them under.
BRANCH_SCRIPTS = {"children": CHILDREN, "set_leaf": SET_LEAF}


async def children(
    run: Run,
    keys: list[str],
    listing: str,
    parents: Sequence[int | None],
    ttl: int,
    strict: bool = False,
) -> tuple[list[list[int]], int]:
    """`Store.children` on the chat's `keys`, and how many messages the chat holds, refreshing
    their TTL and the tenant's `listing`'s (`ttl` seconds; 0: none)."""
    if not parents:
        return [], 0
    fields = ["root" if parent is None else parent for parent in parents]
    answer = await run("children", keys, [listing], [ttl, "1" if strict else "", *fields])
    if answer[0] == "missing":
        raise NotFound("no such message in this chat")
    first, found, count = answer
    return listed_children(parents, first, found), int(count)


def path_children(answer: list[Any]) -> dict[int | None, list[int]]:
    """The children READ_CHAT answers for a path's versions (the lowest id kept, the fields it
    read, what it found), by parent (None: the chat's first messages)."""
    first, fields, found = answer
    parents = [None if field == "root" else int(field) for field in fields]
    return dict(zip(parents, listed_children(parents, first, found), strict=True))


def listed_children(
    parents: Sequence[int | None], first: str | int, found: Sequence[str | None]
) -> list[list[int]]:
    """Each parent's children as `Store.children` answers them, from what `children_of` found
    and the lowest id kept, `first`."""
    kept = int(first)  # the items below it were dropped by trimming, their children kept
    return [
        [] if parent is not None and parent < kept else [k for k in kid_ids(kids) if k >= kept]
        for parent, kids in zip(parents, found, strict=True)
    ]


async def set_leaf(
    run: Run, keys: list[str], listing: str, item: int, descend: bool, ttl: int
) -> int | None:
    """`Store.set_leaf` on the chat's `keys` and its lock's, refreshing their TTL and the
    tenant's `listing`'s (`ttl` seconds; 0: none)."""
    leaf = await run("set_leaf", keys, [listing], [item, "1" if descend else "0", ttl])
    if leaf == -1:
        raise ChatBusy()
    return None if leaf is None else int(leaf)


def kid_ids(joined: str | None) -> list[int]:
    """The ids of a `:kids` entry (comma separated; None: none)."""
    return [int(kid) for kid in joined.split(",")] if joined else []
