"""The Lua of the Redis backend for a chat's idempotency records: the claims of their keys
(`CLAIM_SCRIPTS`, which `RedisStore` runs), and their removal with what they answered:
`LINKED`, the pieces that find them by their links (`:idems`, written by the turn's save in
`redis_scripts.py`), which `redis_item_scripts.py`'s `DELETE_ITEMS` and `redis_export.py`'s
`SAVE_TREE` (an import replacing the chat) are built on, and `DELETE_CHAT` (`redis_chats.py`'s
`delete_chat`).

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
-- The finished records the links (KEYS[at]) tie to an item of `gone` (ids; nil: every record),
-- records declared after it (ARGV[1] of them): their links, their keys, whether one is missing.
local function linked(at, gone)
  local declared = {}
  for i = at + 1, at + tonumber(ARGV[1]) do declared[KEYS[i]] = true end
  local links, records, missing = {}, {}, false
  for _, link in ipairs(redis.call('ZRANGE', KEYS[at], 0, -1)) do
    local from, to, record = string.match(link, '^(%-?%d+) (%-?%d+) (.+)$')
    local hit = gone == nil
    for _, id in ipairs(gone or {}) do
      local n = tonumber(id)
      if n >= tonumber(from) and n <= tonumber(to) then
        hit = true
        break
      end
    end
    if hit then
      links[#links + 1] = link
      records[#records + 1] = record
      missing = missing or not declared[record]
    end
  end
  return links, records, missing
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

# By the name `RedisStore` runs them under.
CLAIM_SCRIPTS = {
    "claim_idempotency": CLAIM_IDEMPOTENCY,
    "release_idempotency": RELEASE_IDEMPOTENCY,
}

# By the name `RedisChats` runs them under.
IDEM_SCRIPTS = {"delete_chat": DELETE_CHAT}
