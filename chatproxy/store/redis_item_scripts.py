"""The Lua scripts of the Redis backend that read or remove given items of a chat (`redis.py`'s
`load_items` and `delete_items`), beside the turn's scripts of `redis_scripts.py` and the
path's of `redis_read_scripts.py`, with the same rules: the chat's four keys first, `UPGRADE`
first.

Removing an item moves its children under its nearest ancestor that stays, so their stored
text, which starts with their parent, is written again; `:kids` stays as `add_child` keeps it:
each parent's children in the order of their ids, but the one numbered right after it. A chat
whose `:kids` lists that one too (the first release of trees) is read the same way. The
finished idempotency records of the turns that stored an item removed go with it (`LINKED`).
"""

from chatproxy.store.redis_idem_scripts import LINKED
from chatproxy.store.redis_scripts import REFRESH, UPGRADE

LOAD_ITEMS = (
    UPGRADE
    + """
-- KEYS: items, meta, kids, old list, and on a single node the tenant's listing
-- ARGV: ttl (0 = none), then item ids
-- Returns each item's stored text (false for one the chat does not hold), refreshing the TTL
-- (the listing's too, which outlives its chats).
local found = {}
for i = 2, #ARGV do
  found[i - 1] = redis.call('HGET', KEYS[1], ARGV[i]) or false
end
if tonumber(ARGV[1]) > 0 then
  for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ARGV[1]) end
  if KEYS[5] then redis.call('EXPIRE', KEYS[5], ARGV[1]) end
end
return found
"""
)

DELETE_ITEMS = (
    UPGRADE
    + REFRESH
    + LINKED
    + """
-- KEYS: items, meta, kids, old list, lock, the links of the chat's idempotency records
--       (`:idems`), the records declared (ARGV[1] of them), and on a single node the tenant's
--       listing
-- ARGV: how many records are declared, now, ttl (0 = none), chat id, then the ids to remove
-- Returns the ids removed, or -1 (removing none) while a turn holds the chat's lock, or `again`
-- (LINKED). The finished records of the turns that stored an item removed go with it.
local up, gone = {}, {}  -- each removed item's parent ('null': none); the ids removed
for i = 5, #ARGV do
  local raw = redis.call('HGET', KEYS[1], ARGV[i])
  local id, parent = false, false
  if raw then id, parent = string.match(raw, PLACED) end
  if id and not up[id] then
    up[id] = parent
    gone[#gone + 1] = id
  end
end
if #gone == 0 then return {} end
if redis.call('EXISTS', KEYS[5]) == 1 then return -1 end
local links, records, missing = linked(6, holding(gone))
if missing then return again(records) end

-- Where `:kids` lists the children of `id`: one trimming dropped lists them under 'root'.
local first = tonumber(redis.call('HGET', KEYS[2], 'first') or 0)
local function field_of(id) return (id == 'null' or tonumber(id) < first) and 'root' or id end
local function listed(field)  -- the ids `:kids` lists under `field`
  local ids = {}
  for kid in string.gmatch(redis.call('HGET', KEYS[3], field) or '', '%d+') do
    ids[#ids + 1] = kid
  end
  return ids
end
local function write(field, ids)
  if #ids == 0 then
    redis.call('HDEL', KEYS[3], field)
  else
    redis.call('HSET', KEYS[3], field, table.concat(ids, ','))
  end
end
-- Every child of `id`: those listed, and the one numbered after it (add_child), once.
local function children(id)
  local kids, seen = listed(id), {}
  for _, kid in ipairs(kids) do seen[kid] = true end
  local next_one = tostring(tonumber(id) + 1)
  local raw = redis.call('HGET', KEYS[1], next_one)
  local _, parent = false, false
  if raw then _, parent = string.match(raw, PLACED) end
  if parent == id and not seen[next_one] then kids[#kids + 1] = next_one end
  return kids
end
-- The nearest ancestor of a removed item that stays ('null' if none does).
local function survivor(id)
  local parent = up[id]
  while up[parent] do parent = up[parent] end
  if parent ~= 'null' and redis.call('HEXISTS', KEYS[1], parent) == 0 then return 'null' end
  return parent
end
-- Lists `id` under `parent` in id order, unless it is the one numbered after it (add_child).
local function insert_child(parent, id)
  local n = tonumber(id)
  if n == (parent == 'null' and -1 or tonumber(parent)) + 1 then return end
  local ids = listed(field_of(parent))
  local at = #ids + 1
  for i, kid in ipairs(ids) do
    if tonumber(kid) > n then at = i break end
  end
  table.insert(ids, at, id)
  write(field_of(parent), ids)
end

local moves, to_of = {}, {}  -- {child, its new parent}; each removed item's survivor
for _, id in ipairs(gone) do
  to_of[id] = survivor(id)
  for _, kid in ipairs(children(id)) do
    if not up[kid] then moves[#moves + 1] = {kid, to_of[id]} end
  end
end
for _, id in ipairs(gone) do
  local field, kept = field_of(up[id]), {}
  local ids = listed(field)
  for _, kid in ipairs(ids) do
    if kid ~= id then kept[#kept + 1] = kid end
  end
  if #kept < #ids then write(field, kept) end
  redis.call('HDEL', KEYS[3], id)
  redis.call('HDEL', KEYS[1], id)
end
for _, move in ipairs(moves) do
  local kid, parent = move[1], move[2]
  local raw = redis.call('HGET', KEYS[1], kid)
  local _, last = string.find(raw, PLACED)
  local text = '{"id":' .. kid .. ',"parent":' .. parent .. ',' .. string.sub(raw, last + 1)
  redis.call('HSET', KEYS[1], kid, text)
  insert_child(parent, kid)
end

local leaf = redis.call('HGET', KEYS[2], 'leaf')
if leaf and up[leaf] then
  if to_of[leaf] == 'null' then
    redis.call('HDEL', KEYS[2], 'leaf')
  else
    redis.call('HSET', KEYS[2], 'leaf', to_of[leaf])
  end
end
-- A window a process knows is known by the last turn (windows.py): none is after this.
redis.call('HDEL', KEYS[2], 'last_turn')
-- Summaries may tell of what was removed: all go, and one being written is fenced off.
if redis.call('HDEL', KEYS[2], 'sums') == 1 then
  for _, field in ipairs(redis.call('HKEYS', KEYS[3])) do
    if string.sub(field, 1, 1) == 's' then redis.call('HDEL', KEYS[3], field) end
  end
end
redis.call('HINCRBY', KEYS[2], 'pruned', 1)
redis.call('HSET', KEYS[2], 'messages', redis.call('HLEN', KEYS[1]), 'updated', ARGV[2])
refresh(ARGV[3], ARGV[2], ARGV[4], KEYS[7 + tonumber(ARGV[1])])
forget(records)
for _, link in ipairs(links) do redis.call('ZREM', KEYS[6], link) end
local removed = {}
for i, id in ipairs(gone) do removed[i] = tonumber(id) end
return removed
"""
)

# By the name `RedisStore` runs them under.
ITEM_SCRIPTS = {"load_items": LOAD_ITEMS, "delete_items": DELETE_ITEMS}
