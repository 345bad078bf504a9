"""The Lua scripts of the Redis backend (`redis.py`): each runs atomically in Redis, and each
touches only keys of one chat (one hash slot), so they also run on a Redis Cluster. On a single
node some are also given a key outside the chat (the global prompt, the tenant's listing), so that
a step is one call; a cluster runs that part as a second one."""

SAVE_TURN = """
-- KEYS: msgs, meta, lock, idem, and on a single node the tenant's listing
-- ARGV: turn_id, now, ttl (0 = none), fenced (0 = no, 1 = yes, 2 = and release the lock),
--       lock token, idem fingerprint ('' = none), idem response, idem ttl, most messages kept
--       (0 = all), prompt, completion and total tokens, title, chat id, message JSON...
local holds = redis.call('GET', KEYS[3]) == ARGV[5]
if ARGV[4] == '2' and holds then
  redis.call('DEL', KEYS[3])
end
local meta = redis.call('HMGET', KEYS[2], 'last_turn', 'appended', 'created', 'title')
if meta[1] == ARGV[1] then
  return 0
end
if ARGV[4] ~= '0' and not holds then
  return -1
end
local added, kept = #ARGV - 14, nil
for i = 15, #ARGV, 100 do  -- at most 100 at a time: unpack has a limit
  kept = redis.call('RPUSH', KEYS[1], unpack(ARGV, i, math.min(i + 99, #ARGV)))
end
kept = kept or redis.call('LLEN', KEYS[1])
-- A chat stored before messages were numbered counts from the messages it had.
local appended = tonumber(meta[2] or kept - added) + added
local most = tonumber(ARGV[9])
if most > 0 and kept > most then
  redis.call('LTRIM', KEYS[1], -most, -1)
  kept = most
end
local fields = {'updated', ARGV[2], 'last_turn', ARGV[1], 'messages', kept, 'appended', appended}
if not meta[3] then
  table.insert(fields, 'created')
  table.insert(fields, ARGV[2])
end
if ARGV[13] ~= '' and not meta[4] then
  table.insert(fields, 'title')
  table.insert(fields, ARGV[13])
end
redis.call('HSET', KEYS[2], unpack(fields))
redis.call('HINCRBY', KEYS[2], 'prompt_tokens', ARGV[10])
redis.call('HINCRBY', KEYS[2], 'completion_tokens', ARGV[11])
redis.call('HINCRBY', KEYS[2], 'total_tokens', ARGV[12])
local ttl = tonumber(ARGV[3])
for i = 1, 2 do
  if ttl > 0 then redis.call('EXPIRE', KEYS[i], ARGV[3]) else redis.call('PERSIST', KEYS[i]) end
end
if ARGV[6] ~= '' then
  redis.call('HSET', KEYS[4], 'state', 'done', 'fingerprint', ARGV[6], 'response', ARGV[7])
  redis.call('EXPIRE', KEYS[4], ARGV[8])
end
if KEYS[5] then
  redis.call('ZADD', KEYS[5], ARGV[2], ARGV[14])
  if ttl > 0 then redis.call('EXPIRE', KEYS[5], ARGV[3]) end
end
return 1
"""

# Reads a chat window, given locals limit (-1 = all), before (-1 = newest), ttl (0 = none), their
# ARGV texts limit_arg and ttl_arg, global (the global prompt's key, or nil on a cluster), and
# known, known_count: the turn id by which the caller knows the chat's newest known_count
# messages (false = none; see windows.py).
# Returns: exists, own system prompt, number of the first message returned, messages (or, if the
# caller knows them, how many of its newest the window holds), settings, the global prompt (false
# on a cluster).
# A number given to redis.call is formatted as text first, which costs more than the command, so
# the arguments that can be are passed on as ARGV's own text.
READ_WINDOW = """
local n = redis.call('LLEN', KEYS[1])
local meta = redis.call('HMGET', KEYS[2], 'appended', 'system', 'settings', 'last_turn')
local first = tonumber(meta[1] or n) - n
local stop = n - 1
if before >= 0 then stop = math.min(stop, before - first - 1) end
local start = 0
if limit >= 0 then start = math.max(0, stop - limit + 1) end
local items = {}
-- Indices from the tail: LRANGE walks from the nearer end, so a window costs the same in any chat.
if stop >= start and limit ~= 0 then
  if known and meta[4] == known and stop - start + 1 <= known_count then
    items = stop - start + 1
  elseif before < 0 and limit > 0 then
    items = redis.call('LRANGE', KEYS[1], '-' .. limit_arg, '-1')
  else
    items = redis.call('LRANGE', KEYS[1], start - n, stop - n)
  end
end
local exists
if ttl > 0 then
  redis.call('EXPIRE', KEYS[1], ttl_arg)
  exists = redis.call('EXPIRE', KEYS[2], ttl_arg)  -- 1 if the chat's hash exists
else
  exists = redis.call('EXISTS', KEYS[2])
end
local global_system = false
if global then global_system = redis.call('GET', global) end
return {exists, meta[2], first + start, items, meta[3], global_system}
"""

READ_CHAT = (
    """
-- KEYS: msgs, meta, and on a single node the global prompt
-- ARGV: limit (-1 = all), before (-1 = newest), ttl (0 = none)
local limit, before, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local limit_arg, ttl_arg, global = ARGV[1], ARGV[3], KEYS[3]
local known, known_count = false, 0
"""
    + READ_WINDOW
)

BEGIN_TURN = (
    """
-- KEYS: msgs, meta, lock, and on a single node the global prompt
-- ARGV: limit, ttl (0 = none), lock token, lease (ms), known turn id ('' = none), known count
-- Takes the turn lock and reads the newest `limit` messages, or returns false (nil) if another
-- token holds it. The holder may take it again (a call re-sent after a lost reply).
if not redis.call('SET', KEYS[3], ARGV[3], 'NX', 'PX', ARGV[4]) then
  if redis.call('GET', KEYS[3]) ~= ARGV[3] then
    return false
  end
  redis.call('PEXPIRE', KEYS[3], ARGV[4])
end
local limit, before, ttl = tonumber(ARGV[1]), -1, tonumber(ARGV[2])
local limit_arg, ttl_arg, global = ARGV[1], ARGV[2], KEYS[4]
local known, known_count = ARGV[5] ~= '' and ARGV[5], tonumber(ARGV[6])
"""
    + READ_WINDOW
)

RELEASE_TURN = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

CLAIM_IDEMPOTENCY = """
-- KEYS: idem   ARGV: fingerprint, pending lease (ms)
local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  redis.call('HSET', KEYS[1], 'state', 'pending', 'fingerprint', ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {'new'}
end
if redis.call('HGET', KEYS[1], 'fingerprint') ~= ARGV[1] then
  return {'mismatch'}
end
if state == 'pending' then
  return {'pending'}
end
return {'done', redis.call('HGET', KEYS[1], 'response')}
"""

RELEASE_IDEMPOTENCY = """
if redis.call('HGET', KEYS[1], 'state') == 'pending'
   and redis.call('HGET', KEYS[1], 'fingerprint') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# By the name `RedisStore` runs them under.
SCRIPTS = {
    "save_turn": SAVE_TURN,
    "read_chat": READ_CHAT,
    "begin_turn": BEGIN_TURN,
    "release_turn": RELEASE_TURN,
    "claim_idempotency": CLAIM_IDEMPOTENCY,
    "release_idempotency": RELEASE_IDEMPOTENCY,
}
