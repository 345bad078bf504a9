"""The Lua scripts of the Redis backend (`redis.py`) that write a turn (its save, the release of
its lock), and the pieces the others are built from: `UPGRADE`, which every script on a chat
starts with, and `REFRESH`. The others are grouped by what they do, each in a module of its own
(`redis_read_scripts.py` for a path's reads, `redis_branches.py` for a chat's branches,
`redis_item_scripts.py` for given items, `redis_idem_scripts.py` for idempotency keys' claims
and records, ...).

Each runs atomically in Redis, and each touches only keys of one chat (one hash slot), so they
also run on a Redis Cluster. On a single node some are also given a key outside the chat (the
global prompt, the tenant's listing), so that a step is one call; a cluster runs that part as a
second one. Every script on a chat is given the chat's four keys first (`redis_keys.chat_keys`:
items, meta, kids, and the message list of the layout before trees) and starts with `UPGRADE`.
"""

from chatproxy.store.redis_idem_scripts import LINKED, TRIMMED

# Turns a chat kept as a list (the layout before trees) into items, in place: message n becomes
# item first + n under the one before it (the first under the leaf, if the chat has items: the
# release before wrote to a chat upgraded already); the newest is the leaf. LLEN of a missing
# key is 0.
UPGRADE = """
local PARENT = '^{"id":%d+,"parent":(%d+)'
local PLACED = '^{"id":(%d+),"parent":([%dnul]+),'  -- an item's id and parent ('null': none)
local function placed(id, parent, body)  -- Message.dumps of a message whose JSON is `body`
  return '{"id":' .. id .. ',"parent":' .. parent .. ',' .. string.sub(body, 2)
end
-- `:kids` lists a parent's children but the one numbered right after it (id + 1; for the
-- first messages, 0), which a linear chat always has: that one is found by its own parent.
local function add_child(parent, id)
  local up = parent == 'null' and -1 or tonumber(parent)
  if tonumber(id) == up + 1 then return end
  local field = up < 0 and 'root' or parent
  local kids = redis.call('HGET', KEYS[3], field)
  if kids and tonumber(string.match(kids, '(%d+)$')) > tonumber(id) then
    local ids = {tonumber(id)}  -- a fork saved after a later one: the list stays in id order
    for kid in string.gmatch(kids, '%d+') do table.insert(ids, tonumber(kid)) end
    table.sort(ids)
    kids = table.concat(ids, ',')
  else
    kids = kids and (kids .. ',' .. id) or id
  end
  redis.call('HSET', KEYS[3], field, kids)
end
local function upgrade()
  local n = redis.call('LLEN', KEYS[4])
  if n == 0 then return end
  local state = redis.call('HMGET', KEYS[2], 'appended', 'leaf', 'first')
  local appended = tonumber(state[1] or n)
  local first = appended - n
  -- A chat upgraded before (the release before wrote to it again): the list goes on its leaf.
  local parent = state[2] or 'null'
  local raws = redis.call('LRANGE', KEYS[4], 0, -1)
  for i, raw in ipairs(raws) do
    local id = first + i - 1
    redis.call('HSET', KEYS[1], id, placed(id, parent, raw))
    add_child(parent, id)
    parent = tostring(id)
  end
  redis.call('HSET', KEYS[2], 'appended', appended, 'leaf', appended - 1,
             'messages', redis.call('HLEN', KEYS[1]))
  if not state[3] then redis.call('HSET', KEYS[2], 'first', first) end
  local ttl = redis.call('PTTL', KEYS[4])
  redis.call('DEL', KEYS[4])
  if ttl > 0 then
    redis.call('PEXPIRE', KEYS[1], ttl)
    redis.call('PEXPIRE', KEYS[3], ttl)
  end
end
upgrade()
"""

# Refreshes a chat's three keys' TTL (`ttl_arg`: seconds as ARGV text, '0' for none) and, on a
# single node (`listing`: the tenant's listing, nil on a cluster), the chat's entry there,
# scored `score`. A turn's save does the same inline, on its hot path.
REFRESH = """
local function refresh(ttl_arg, score, chat_id, listing)
  local ttl = tonumber(ttl_arg)
  for i = 1, 3 do
    if ttl > 0 then redis.call('EXPIRE', KEYS[i], ttl_arg) else redis.call('PERSIST', KEYS[i]) end
  end
  if listing then
    redis.call('ZADD', listing, score, chat_id)
    if ttl > 0 then redis.call('EXPIRE', listing, ttl_arg) end
  end
end
"""

SAVE_TURN = (
    UPGRADE
    + LINKED
    + TRIMMED
    + """
-- KEYS: items, meta, kids, old list, lock, idem, the chat's links of its records (`:idems`),
--       the records declared (ARGV[1] of them), and on a single node the tenant's listing
-- ARGV: how many records are declared, turn_id, now, ttl (0 = none), fenced (0 = no, 1 = yes,
--       2 = and release the lock), lock token, idem fingerprint ('' = none), idem response,
--       idem ttl, most items kept (0 = all), prompt, completion and total tokens, title, chat
--       id, metadata ('' = leave it), whether the chat had a record when the turn began ('1':
--       a save that finds none stores nothing: the chat was deleted meanwhile), then per
--       message its stored text (Message.dumps, which starts with its id and parent); or its
--       JSON without them, for the next id under the one before it (the first: the leaf).
-- A save that trims takes the finished records of the turns whose items all go (TRIMMED): it
-- answers `again` (LINKED) before it changes anything if one was not declared.
local holds = redis.call('GET', KEYS[5]) == ARGV[6]
-- The lock goes in the step (a repeated save's too), but not in a run that asks for records.
local function release()
  if ARGV[5] == '2' and holds then redis.call('DEL', KEYS[5]) end
end
local meta = redis.call('HMGET', KEYS[2], 'last_turn', 'appended', 'created', 'title', 'first',
                        'messages', 'leaf')
if meta[1] == ARGV[2] then
  release()
  return 0
end
if ARGV[5] ~= '0' and not holds then
  return -1
end
if ARGV[17] == '1' and not (meta[1] or meta[2] or meta[3] or meta[7])
   and redis.call('EXISTS', KEYS[2]) == 0 then
  release()
  return -2  -- the chat was deleted while the turn ran
end
local next_id, first, count = tonumber(meta[2] or 0), tonumber(meta[5] or 0), tonumber(meta[6] or 0)
local head, up = string.match(ARGV[18] or '', PLACED)
if ARGV[5] == '0' then  -- unfenced (a fork's): placed messages land once, under a live item
  local found = head and redis.call('HGET', KEYS[1], head)
  if found and found == ARGV[18] then  -- this save landed before
    return 0
  end
  if found or (head and up ~= 'null' and redis.call('HEXISTS', KEYS[1], up) == 0) then
    return -2  -- its ids taken (the chat replaced meanwhile), or its parent gone
  end
elseif head and up ~= 'null' and tonumber(up) >= first
       and redis.call('HEXISTS', KEYS[1], up) == 0 then
  release()
  return -2  -- its parent gone: deleted (one trimmed away is below the first item kept)
end
local most, adds = tonumber(ARGV[10]), #ARGV - 17
if most > 0 and count + adds > most then  -- it trims
  local added, at = adding(18, next_id)
  if takes_undeclared(7, count == 0 and at or first, count + adds - most, added, KEYS[6]) then
    local _, records = linked(7, nil)
    return again(records)
  end
end
release()
local parent = meta[7] or 'null'
local last, leaf, first_before = nil, nil, meta[5] and first
local fields = {}  -- the items' ids and texts, for an HSET per 1,000 (unpack's bound)
for i = 18, #ARGV do
  local raw = ARGV[i]
  local id, up = string.match(raw, PLACED)
  if id then
    parent = up
  else
    id = tostring(next_id)
    raw = placed(id, parent, raw)
  end
  if count == 0 then first = tonumber(id) end
  fields[#fields + 1] = id
  fields[#fields + 1] = raw
  if #fields == 2000 then
    redis.call('HSET', KEYS[1], unpack(fields))
    fields = {}
  end
  -- Under an item trimming dropped (while the turn ran) it starts a path (CHILDREN).
  add_child((parent ~= 'null' and tonumber(parent) < first) and 'null' or parent, id)
  count = count + 1
  last, leaf = tonumber(id), id
  if last >= next_id then next_id = last + 1 end
  parent = id
end
if #fields > 0 then redis.call('HSET', KEYS[1], unpack(fields)) end
local misses, dropped = 0, false
local listed = {}  -- the `:kids` of the items dropped
while most > 0 and count > most and first < next_id do  -- the oldest items go first
  dropped = true
  local gone = redis.call('HDEL', KEYS[1], first)
  count = count - gone
  misses = gone == 1 and 0 or misses + 1
  local kids = redis.call('HGET', KEYS[3], first)
  if kids then listed[#listed + 1] = kids end
  redis.call('HDEL', KEYS[3], first, 's' .. first)  -- its children, and a summary ending there
  first = first + 1
  if misses == 32 then  -- a wide gap (an imported chat's ids may lie far apart): skip it
    local lowest = next_id
    for _, id in ipairs(redis.call('HKEYS', KEYS[1])) do lowest = math.min(lowest, tonumber(id)) end
    first, misses = lowest, 0
  end
end
-- Those kept under an item dropped start paths: listed under 'root' (the one numbered right
-- after its parent, now the first kept, CHILDREN finds by itself).
if #listed > 0 then
  local roots = redis.call('HGET', KEYS[3], 'root')
  if roots then listed[#listed + 1] = roots end
  local starts, seen = {}, {}
  for _, kids in ipairs(listed) do
    for kid in string.gmatch(kids, '%d+') do
      local n = tonumber(kid)
      if n >= first and not seen[n] then
        seen[n] = true
        starts[#starts + 1] = n
      end
    end
  end
  table.sort(starts)
  if #starts > 0 then
    redis.call('HSET', KEYS[3], 'root', table.concat(starts, ','))
  else
    redis.call('HDEL', KEYS[3], 'root')
  end
end
-- Numbers are formatted as text on their way to Redis, which costs more than the command: the
-- leaf goes as its ARGV text, and `first` only when it changed.
fields = {'updated', ARGV[3], 'last_turn', ARGV[2], 'messages', count, 'appended', next_id}
if first ~= first_before then
  table.insert(fields, 'first')
  table.insert(fields, first)
end
if leaf then
  table.insert(fields, 'leaf')
  table.insert(fields, leaf)
end
if not meta[3] then
  table.insert(fields, 'created')
  table.insert(fields, ARGV[3])
end
if ARGV[14] ~= '' and not meta[4] then
  table.insert(fields, 'title')
  table.insert(fields, ARGV[14])
end
if ARGV[16] ~= '' then
  table.insert(fields, 'metadata')
  table.insert(fields, ARGV[16])
end
redis.call('HSET', KEYS[2], unpack(fields))
redis.call('HINCRBY', KEYS[2], 'prompt_tokens', ARGV[11])
redis.call('HINCRBY', KEYS[2], 'completion_tokens', ARGV[12])
redis.call('HINCRBY', KEYS[2], 'total_tokens', ARGV[13])
local ttl = tonumber(ARGV[4])
for i = 1, 3 do
  if ttl > 0 then redis.call('EXPIRE', KEYS[i], ARGV[4]) else redis.call('PERSIST', KEYS[i]) end
end
local listing = KEYS[8 + tonumber(ARGV[1])]
if ARGV[7] ~= '' then
  redis.call('HSET', KEYS[6], 'state', 'done', 'fingerprint', ARGV[7], 'response', ARGV[8])
  redis.call('EXPIRE', KEYS[6], ARGV[9])
  -- Linked to the items the turn stored (their ids are consecutive), by which deleting them or
  -- the chat, or a trim dropping them, finds it. A link is kept an hour past its record's
  -- expiry, by this clock: a save on a clock ahead of this one by less never prunes it first.
  local now, lasts = tonumber(ARGV[3]), tonumber(ARGV[9])
  local from = last and (tonumber(head) or tonumber(meta[2] or 0)) or -1
  redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', now - 3600)
  redis.call('ZADD', KEYS[7], now + lasts, from .. ' ' .. (last or -1) .. ' ' .. KEYS[6])
  redis.call('EXPIRE', KEYS[7], lasts + 3600)
end
if dropped then forget_dropped(7, first, KEYS[6]) end
if listing then
  redis.call('ZADD', listing, ARGV[3], ARGV[15])
  if ttl > 0 then redis.call('EXPIRE', listing, ARGV[4]) end
end
return {1, first, meta[1] or false}  -- and the last turn it found (windows.py: a fork's)
"""
)

RELEASE_TURN = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# By the name `RedisStore` runs them under.
SCRIPTS = {
    "save_turn": SAVE_TURN,
    "release_turn": RELEASE_TURN,
}
