"""The Lua scripts of the Redis backend that set a chat's own fields (`redis_chats.py`'s
`set_chat_system`, `set_chat_metadata` and `update_chat_settings`), with the rules of
`redis_scripts.py`: the chat's four keys first, `UPGRADE` first.

Whether the chat exists is checked in the same step as the write, so a change that may not make
a chat (a conversation's metadata) cannot bring back one deleted a moment before.
"""

from chatproxy.store.redis_scripts import UPGRADE

# Makes a change of the chat's meta its latest activity: `updated` (and `created`, for a chat
# it makes), the TTL of its three keys and, on a single node (KEYS[5]), its listing's entry.
CHANGED = """
local function changed(now, ttl_arg, chat_id)
  redis.call('HSET', KEYS[2], 'updated', now)
  redis.call('HSETNX', KEYS[2], 'created', now)
  local ttl = tonumber(ttl_arg)
  if ttl > 0 then
    for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ttl_arg) end
  end
  if KEYS[5] then
    redis.call('ZADD', KEYS[5], now, chat_id)
    if ttl > 0 then redis.call('EXPIRE', KEYS[5], ttl_arg) end
  end
end
"""

SET_FIELD = (
    UPGRADE
    + CHANGED
    + """
-- KEYS: items, meta, kids, old list, and on a single node the tenant's listing
-- ARGV: field, value, remove ('1': remove the field, the value unused), now, ttl (0 = none),
--       create ('1': a chat that does not exist is made, unless the field is removed), chat id
-- Sets (or removes) a field of the chat's meta and makes the change its latest activity.
-- Returns 1, or 0 (changing nothing) if the chat does not exist and is not made.
if redis.call('EXISTS', KEYS[2]) == 0 and (ARGV[6] ~= '1' or ARGV[3] == '1') then
  return 0
end
if ARGV[3] == '1' then
  redis.call('HDEL', KEYS[2], ARGV[1])
else
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
end
changed(ARGV[4], ARGV[5], ARGV[7])
return 1
"""
)

SET_SETTINGS = (
    UPGRADE
    + CHANGED
    + """
-- KEYS: items, meta, kids, old list, and on a single node the tenant's listing
-- ARGV: the settings the change was made on ('' = none), the settings to write ('' = none),
--       the system prompt ('set' ARGV[4], 'remove', or 'keep' it), its text, now, ttl
--       (0 = none), chat id
-- Writes a chat's own settings and system prompt together, if its settings are still those
-- the change was made on, and makes the change its latest activity.
-- Returns 1; 0 (changing nothing) if the chat does not exist and the change sets nothing; or
-- {its settings now} (changing nothing) if they are not those the change was made on.
local now = redis.call('HGET', KEYS[2], 'settings') or ''
if now ~= ARGV[1] then return {now} end
if redis.call('EXISTS', KEYS[2]) == 0 and ARGV[2] == '' and ARGV[3] ~= 'set' then
  return 0
end
if ARGV[2] == '' then
  redis.call('HDEL', KEYS[2], 'settings')
else
  redis.call('HSET', KEYS[2], 'settings', ARGV[2])
end
if ARGV[3] == 'set' then
  redis.call('HSET', KEYS[2], 'system', ARGV[4])
elseif ARGV[3] == 'remove' then
  redis.call('HDEL', KEYS[2], 'system')
end
changed(ARGV[5], ARGV[6], ARGV[7])
return 1
"""
)

# By the name `RedisStore` runs them under.
META_SCRIPTS = {"set_field": SET_FIELD, "set_settings": SET_SETTINGS}
