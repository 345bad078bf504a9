"""The Lua script of a tenant's listing in Redis (`redis_chats.py`'s `list_chats`): the sorted set
`chats:{<tenant>}` (`redis_keys.index_key`), scored by last activity, one key, so it also runs
on a Redis Cluster.

The listing's order is Redis's own for a sorted set read backwards: the highest score first, of
equal scores the chat id that sorts last (bytewise) first. A page starts after a position
(score, chat id) rather than at a rank, so chats that expire and leave the listing between two
pages move no other chat's place. The position is the cursor chat's own, where it is listed now:
a cursor chat that is gone (deleted, expired) names no position (`list_chats`: `NotFound`).
"""

LIST_CHATS = """
-- KEYS: the tenant's listing   ARGV: score ('+inf': from the top), chat id ('' = before every
-- chat of that score), count
-- Returns up to `count` chat ids with their scores (id, score, id, score, ...) that come after
-- (score, chat id) in the listing's order.
local function sorts_before(a, b)  -- as Redis sorts members: bytewise, whatever the locale
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end
local skip = redis.call('ZCOUNT', KEYS[1], '(' .. ARGV[1], '+inf')
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], ARGV[1])) do
  if not sorts_before(id, ARGV[2]) then skip = skip + 1 end
end
return redis.call('ZREVRANGE', KEYS[1], skip, skip + tonumber(ARGV[3]) - 1, 'WITHSCORES')
"""

# By the name `RedisStore` runs them under.
LISTING_SCRIPTS = {"list_chats": LIST_CHATS}
