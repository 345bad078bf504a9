"""The Lua of the Redis backend for a chat's idempotency records: the claims of their keys
(`CLAIM_SCRIPTS`, which `RedisStore` runs), and their removal with what they answered:
`LINKED`, the pieces that find them by their links (`:idems`, written by the turn's save in
`redis_scripts.py`), which `redis_item_scripts.py`'s `DELETE_ITEMS` and `redis_export.py`'s
`SAVE_TREE` (an import replacing the chat) are built on, `DELETE_CHAT` (`redis_chats.py`'s
`delete_chat`), and `TRIMMED`, what a turn's save does with the records of the turns whose
items its trim (MAX_CHAT_MESSAGES) drops.

A record's key is found in its link as the script runs, and a script may touch only the keys it
is given (Redis Cluster's rule, which some hosted Redis enforce on a single node too): such a
script is given the records it knows of after its own keys (`RedisCalls._declaring`), and
answers `again` and every record it must touch, before it changes anything (but `UPGRADE`,
which changes nothing when run again), until they are all given.
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

LINKED = """
-- The records declared after the links (KEYS[at]; ARGV[1] of them), and `own` (nil: none), by key.
local function declared_after(at, own)
  local declared = {}
  if own then declared[own] = true end
  for i = at + 1, at + tonumber(ARGV[1]) do declared[KEYS[i]] = true end
  return declared
end
-- The finished records the links (KEYS[at]) tie to items that `gone` takes (a test of a link's
-- first and last id; nil: every record): their links, their keys, whether one is not declared.
local function linked(at, gone, own)
  local declared = declared_after(at, own)
  local links, records, missing = {}, {}, false
  for _, link in ipairs(redis.call('ZRANGE', KEYS[at], 0, -1)) do
    local from, to, record = string.match(link, '^(%-?%d+) (%-?%d+) (.+)$')
    if gone == nil or gone(tonumber(from), tonumber(to)) then
      links[#links + 1] = link
      records[#records + 1] = record
      missing = missing or not declared[record]
    end
  end
  return links, records, missing
end
-- The test of a link that holds one of `ids`.
local function holding(ids)
  return function(from, to)
    for _, id in ipairs(ids) do
      local n = tonumber(id)
      if n >= from and n <= to then return true end
    end
    return false
  end
end
-- The answer that asks to be run again with `records` declared.
local function again(records)
  local answer = {'again'}
  for _, record in ipairs(records) do answer[#answer + 1] = record end
  return answer
end
-- Deletes those of `records` that are finished: a pending claim (a link that outlived its
-- record, whose key was claimed again) stays with its running turn.
local function forget(records)
  for _, record in ipairs(records) do
    if redis.call('HGET', record, 'state') == 'done' then redis.call('DEL', record) end
  end
end
"""

DELETE_CHAT = (
    LINKED
    + """
-- KEYS: items, meta, kids, old list, the links of the chat's records (`:idems`), the records
--       declared (ARGV[1] of them), and on a single node the tenant's listing
-- ARGV: how many records are declared, chat id
-- Deletes the chat's keys, its finished idempotency records and their links (its turn lock
-- stays with its holder); answers how many of the chat's four keys there were, or `again`.
-- (No UPGRADE: the old layout's list goes too.)
local _, records, missing = linked(5, nil)
if missing then return again(records) end
forget(records)
local found = 0
for i = 1, 4 do found = found + redis.call('DEL', KEYS[i]) end
redis.call('DEL', KEYS[5])
local listing = KEYS[6 + tonumber(ARGV[1])]
if listing then redis.call('ZREM', listing, ARGV[2]) end
return found
"""
)

# What a turn's save (`redis_scripts.py`'s SAVE_TURN, after UPGRADE and LINKED) does with the
# records of the turns whose items its trim (MAX_CHAT_MESSAGES) drops.
TRIMMED = """
-- The ids the save gives the messages it adds (ARGV from `from` on) after `next_id`, by id,
-- and the first.
local function adding(from, next_id)
  local ids, head = {}, nil
  for i = from, #ARGV do
    local id = tonumber((string.match(ARGV[i], PLACED))) or next_id
    ids[id], head = true, head or id
    if id >= next_id then next_id = id + 1 end
  end
  return ids, head
end
-- Whether a trim of `drops` items, the oldest from `first` on (`added`: the ids the save adds),
-- takes the last item of a record not declared (but `own`): it does when fewer than `drops`
-- items lie from `first` up to it, a wide gap skipped as the trim skips it. Only the oldest such
-- record tells: if its last item stays, so do the others'. (Read only: the run asks for them.)
local function takes_undeclared(at, first, drops, added, own)
  local declared, oldest = declared_after(at, own), nil
  for _, link in ipairs(redis.call('ZRANGE', KEYS[at], 0, -1)) do
    local to, record = string.match(link, '^%-?%d+ (%-?%d+) (.+)$')
    to = tonumber(to)
    if to >= 0 and not declared[record] and not (oldest and oldest <= to) then oldest = to end
  end
  local id, found, misses = first, 0, 0
  while oldest and id < oldest and found < drops do
    if added[id] or redis.call('HEXISTS', KEYS[1], id) == 1 then
      found, misses = found + 1, 0
    else
      misses = misses + 1
    end
    id = id + 1
    if misses == 32 then
      local lowest = oldest
      for _, key in ipairs(redis.call('HKEYS', KEYS[1])) do
        if tonumber(key) >= id then lowest = math.min(lowest, tonumber(key)) end
      end
      for n in pairs(added) do
        if n >= id then lowest = math.min(lowest, n) end
      end
      id, misses = lowest, 0
    end
  end
  return oldest ~= nil and found < drops
end
-- Deletes the finished records (declared, or `own`) whose turn's items all went, its last below
-- `first` (a record of no items, -1, stays), and their links. If one were not declared (it was
-- asked for before the trim), all would wait for the next trim, which asks for them.
local function forget_dropped(at, first, own)
  local went = function(_, to) return to >= 0 and to < first end
  local links, records, missing = linked(at, went, own)
  if missing then return end
  forget(records)
  for _, link in ipairs(links) do redis.call('ZREM', KEYS[at], link) end
end
"""

# By the name `RedisStore` runs them under.
CLAIM_SCRIPTS = {
    "claim_idempotency": CLAIM_IDEMPOTENCY,
    "release_idempotency": RELEASE_IDEMPOTENCY,
}

# By the name `RedisChats` runs them under.
IDEM_SCRIPTS = {"delete_chat": DELETE_CHAT}
