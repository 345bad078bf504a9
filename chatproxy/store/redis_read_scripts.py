"""The Lua scripts of the Redis backend that read a chat's path (`redis.py`'s `load_window`,
`load_history` and `load_page`, and `begin_turn`, which also takes the turn's lock), with the
rules of `redis_scripts.py`: the chat's four keys first, `UPGRADE` first.

`READ_CHAT` and `BEGIN_TURN` are made of the same three pieces, `FIND_START` (where the read
starts), `READ_PATH` (the read) and `ANSWER` (the TTL refreshed, the answer). A path is read by
walking parents from its last item, each parent read from the start of the item's text, so a
window costs the same at any depth of any chat. `READ_CHAT` may also find the versions of the
items it read (`PATH_CHILDREN`) and their summaries (`PATH_SUMMARIES`), for
`GET /<chat_id>/chat`, so that a page, its siblings and its summaries are one call that
refreshes the TTL once.
"""

from chatproxy.store.redis_branches import LIST_CHILDREN
from chatproxy.store.redis_scripts import UPGRADE

# Finds where a read starts, given the local `at` ('' = the leaf, 'root' = before the first
# message, else an item id); answers {'missing'} for an id the chat does not hold.
FIND_START = """
local meta = redis.call('HMGET', KEYS[2], 'leaf', 'system', 'settings', 'last_turn', 'appended',
                        'sums')
local from = at
if at == '' then
  from = meta[1]
elseif at == 'root' then
  from = false
elseif redis.call('HEXISTS', KEYS[1], at) == 0 then
  return {'missing'}
end
"""

# Reads the newest messages of the path that ends at `from`, given locals limit (-1 = all),
# before ('' = none: else the page above that item, or, if the chat does not hold it or `at`
# names a path it is not on, the items numbered below it), and known, known_count, known_leaf:
# the turn id by which the caller knows the newest known_count items of the path ending at
# known_leaf (false = none; see windows.py).
READ_PATH = """
local below = false
if before ~= '' then
  local raw = redis.call('HGET', KEYS[1], before)
  if raw and at ~= '' then  -- a given path's page: one before an item off it is as for a gap
    local id = from
    while id and tonumber(id) > tonumber(before) do
      local up = redis.call('HGET', KEYS[1], id)
      id = up and string.match(up, PARENT)
    end
    if id ~= before then raw = false end
  end
  if raw then from = string.match(raw, PARENT) or false else below = tonumber(before) end
end
local items, summary = {}, false
local known_here = known and meta[4] == known and not meta[6]  -- (summaries: walked, below)
  and (at == '' and (meta[1] or '') == known_leaf or at == known_leaf)
if limit ~= 0 and known_here then
  items = math.min(limit, known_count)
elseif limit ~= 0 and from then
  local id, n, walked = from, 0, {}
  while id and (limit < 0 or n < limit) do
    local raw = redis.call('HGET', KEYS[1], id)
    if not raw then break end
    if not below or tonumber(id) < below then
      n = n + 1
      items[n] = raw
      walked[n] = 's' .. id
    end
    id = string.match(raw, PARENT)
  end
  for i = 1, math.floor(n / 2) do
    items[i], items[n + 1 - i] = items[n + 1 - i], items[i]
  end
  if meta[6] and before == '' and limit > 0 then  -- a window: the newest summary on it, or above
    if id then walked[n + 1] = 's' .. id end
    for i = 1, #walked, 1000 do
      local found = redis.call('HMGET', KEYS[3], unpack(walked, i, math.min(i + 999, #walked)))
      for j = 1, #found do
        if found[j] then summary = found[j] break end
      end
      if summary then break end
    end
  end
end
"""

# Refreshes the chat's TTL and answers the read, given the locals READ_PATH leaves, ttl (0 =
# none), ttl_arg (its ARGV text), global and listing (the global prompt's key and the tenant's
# listing, whose TTL is refreshed with the chat's; nil on a cluster), kids (the versions
# PATH_CHILDREN found) and sums (the summaries PATH_SUMMARIES found): each false if not asked for.
# Returns: exists, own system prompt, the items (or, if the caller knows them, how many of its
# newest the window holds), settings, the global prompt (false on a cluster), leaf, next id,
# the newest summary on the path (false: none, or not looked for), the chat's last turn, kids,
# sums.
ANSWER = """
local exists
if ttl > 0 then
  redis.call('EXPIRE', KEYS[1], ttl_arg)
  redis.call('EXPIRE', KEYS[3], ttl_arg)
  exists = redis.call('EXPIRE', KEYS[2], ttl_arg)  -- 1 if the chat's hash exists
  if listing then redis.call('EXPIRE', listing, ttl_arg) end  -- it outlives its chats
else
  exists = redis.call('EXISTS', KEYS[2])
end
local global_system = false
if global then global_system = redis.call('GET', global) end
return {exists, meta[2], items, meta[3], global_system, meta[1] or false, meta[5] or 0, summary,
        meta[4] or false, kids, sums}
"""

# With `children`, finds the versions of the items READ_PATH read (`LIST_CHILDREN`'s
# children_of): {the lowest id kept, 'root' and each parent of theirs, their children}.
PATH_CHILDREN = """
local kids = false
if children then
  local kept = redis.call('HMGET', KEYS[2], 'first', 'starts')
  local first, fields, seen, found = kept[1] or '0', {'root'}, {}, {}
  list_starts(first, kept[2])
  for _, raw in ipairs(items) do
    local _, up = string.match(raw, PLACED)
    if up ~= 'null' and not seen[up] then
      seen[up] = true
      fields[#fields + 1] = up
    end
  end
  for i, field in ipairs(fields) do found[i] = children_of(field, first) end
  kids = {first, fields, found}
end
"""

# With `summaries`, finds the summaries that end at the items READ_PATH read, for a chat that
# has had one ('sums' in its meta; else no call): {item id, summary, ...} for those there are.
PATH_SUMMARIES = """
local sums = summaries and {}
if sums and meta[6] then
  for i = 1, #items, 1000 do
    local ids, fields = {}, {}
    for j = i, math.min(i + 999, #items) do
      ids[#ids + 1] = string.match(items[j], PLACED)
      fields[#fields + 1] = 's' .. ids[#ids]
    end
    local found = redis.call('HMGET', KEYS[3], unpack(fields))
    for j = 1, #ids do
      if found[j] then
        sums[#sums + 1] = ids[j]
        sums[#sums + 1] = found[j]
      end
    end
  end
end
"""

READ_CHAT = (
    UPGRADE
    + LIST_CHILDREN
    + """
-- KEYS: items, meta, kids, old list, and on a single node the global prompt and the listing
-- ARGV: limit (-1 = all), before ('' = none), ttl (0 = none), at ('' = leaf, or an item id),
--       children ('1': with the versions of the items read), summaries ('1': with theirs)
local limit, before, ttl, at = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), ARGV[4]
local ttl_arg, global, listing, children = ARGV[3], KEYS[5], KEYS[6], ARGV[5] == '1'
local summaries = ARGV[6] == '1'
local known, known_count, known_leaf = false, 0, ''

"""
    + FIND_START
    + READ_PATH
    + PATH_CHILDREN
    + PATH_SUMMARIES
    + ANSWER
)

BEGIN_TURN = (
    UPGRADE
    + """
-- KEYS: items, meta, kids, old list, lock, and on a single node the global prompt and the
--       tenant's listing
-- ARGV: limit, ttl (0 = none), lock token, lease (ms), known turn id ('' = none), known count,
--       at ('' = the leaf, 'root', or an item id), the known window's last item ('' = none),
--       ids to set aside ('0' = none)
-- Takes the turn lock and reads the newest `limit` items of the path ending at `at`, or returns
-- false (nil) if another token holds it. The holder may take it again (a call re-sent after a
-- lost reply). With ids to set aside (a fork), it takes no lock but waits while one is held,
-- and the ids are the turn's own (the next id returned is the first of them).
local at = ARGV[7]
"""
    + FIND_START
    + """
if ARGV[9] ~= '0' then  -- a fork: no turn that read the next id may be on its way
  if redis.call('EXISTS', KEYS[5]) == 1 then
    return false
  end
  meta[5] = redis.call('HINCRBY', KEYS[2], 'appended', ARGV[9]) - tonumber(ARGV[9])
elseif not redis.call('SET', KEYS[5], ARGV[3], 'NX', 'PX', ARGV[4]) then
  if redis.call('GET', KEYS[5]) ~= ARGV[3] then
    return false
  end
  redis.call('PEXPIRE', KEYS[5], ARGV[4])
end
local limit, before, ttl = tonumber(ARGV[1]), '', tonumber(ARGV[2])
local ttl_arg, global, listing = ARGV[2], KEYS[6], KEYS[7]
local known, known_count, known_leaf = ARGV[5] ~= '' and ARGV[5], tonumber(ARGV[6]), ARGV[8]
local kids, sums = false, false
"""
    + READ_PATH
    + ANSWER
)

# By the name `RedisStore` runs them under.
READ_SCRIPTS = {"read_chat": READ_CHAT, "begin_turn": BEGIN_TURN}
