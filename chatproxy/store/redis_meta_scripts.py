"""The Lua script of the Redis backend that sets a chat's own fields (`redis_chats.py`'s
`set_chat_system`, `set_chat_settings` and `set_chat_metadata`), with the rules of
`redis_scripts.py`: the chat's four keys first, `UPGRADE` first.

Whether the chat exists is checked in the same step as the write, so a change that may not make
a chat (a conversation's metadata) cannot bring back one deleted a moment before.
"""

from chatproxy.store.redis_scripts import UPGRADE

SET_FIELD = (
    UPGRADE
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
redis.call('HSET', KEYS[2], 'updated', ARGV[4])
redis.call('HSETNX', KEYS[2], 'created', ARGV[4])
local ttl = tonumber(ARGV[5])
if ttl > 0 then
  for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ARGV[5]) end
end
if KEYS[5] then
  redis.call('ZADD', KEYS[5], ARGV[4], ARGV[7])
  if ttl > 0 then redis.call('EXPIRE', KEYS[5], ARGV[5]) end
end
return 1
"""
)

# By the name `RedisStore` runs them under.
META_SCRIPTS = {"set_field": SET_FIELD}
