"""Own the Redis side of a chat's branches (`Store.children`, `Store.set_leaf`): the two Lua
scripts and what `redis.py` sends them and makes of their answers, with the rules of
`redis_scripts.py`: the chat's four keys first, `UPGRADE` first.

`:kids` lists a parent's children but the one numbered right after it, which a linear chat
always has (`add_child`): both scripts find that one by the parent its own text starts with.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from chatproxy.errors import ChatBusy
from chatproxy.store.redis_scripts import UPGRADE

if TYPE_CHECKING:  # for annotations: at run time it would lengthen the store's import chain
    from chatproxy.store.redis_calls import Run

CHILDREN = (
    UPGRADE
    + """
-- KEYS: items, meta, kids, old list   ARGV: item ids ('root' for the first messages)
-- Returns the lowest id kept (children below it were dropped by trimming), then each one's
-- children, comma separated (false for none).
local found = {}
for i, field in ipairs(ARGV) do
  local kids = redis.call('HGET', KEYS[3], field)
  local next_one = field == 'root' and '0' or tostring(tonumber(field) + 1)
  local raw = redis.call('HGET', KEYS[1], next_one)
  local _, up = false, false
  if raw then _, up = string.match(raw, PLACED) end
  local listed = kids and string.find(',' .. kids .. ',', ',' .. next_one .. ',', 1, true)
  if up == (field == 'root' and 'null' or field) and not listed then  -- see add_child
    kids = kids and (next_one .. ',' .. kids) or next_one
  end
  found[i] = kids or false
end
return {redis.call('HGET', KEYS[2], 'first') or 0, found}
"""
)

SET_LEAF = (
    UPGRADE
    + """
-- KEYS: items, meta, kids, old list, lock   ARGV: item id, descend ('1': on to its newest
-- descendant by always taking the newest child)
-- Returns the new leaf, false if the chat does not hold the item, or -1 while a turn holds the
-- chat's lock (its save would move the leaf again). Windows known by the last turn
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
return tonumber(id)
"""
)

# By the name `RedisStore` runs them under.
BRANCH_SCRIPTS = {"children": CHILDREN, "set_leaf": SET_LEAF}


async def children(run: Run, keys: list[str], parents: Sequence[int | None]) -> list[list[int]]:
    """`Store.children` on the chat's `keys`."""
    if not parents:
        return []
    fields = ["root" if parent is None else parent for parent in parents]
    first, found = await run("children", keys, [], fields)
    kept = int(first)  # the items below it were dropped by trimming, their children kept
    return [
        [] if parent is not None and parent < kept else [k for k in kid_ids(kids) if k >= kept]
        for parent, kids in zip(parents, found, strict=True)
    ]


async def set_leaf(run: Run, keys: list[str], item: int, descend: bool) -> int | None:
    """`Store.set_leaf` on the chat's `keys` and its lock's."""
    leaf = await run("set_leaf", keys, [], [item, "1" if descend else "0"])
    if leaf == -1:
        raise ChatBusy()
    return None if leaf is None else int(leaf)


def kid_ids(joined: str | None) -> list[int]:
    """The ids of a `:kids` entry (comma separated; None: none)."""
    return [int(kid) for kid in joined.split(",")] if joined else []
