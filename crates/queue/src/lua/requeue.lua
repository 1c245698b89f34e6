-- Requeues dead-lettered jobs: attempts start over, the error history is kept.
-- KEYS[1]: the queue's base key
-- ARGV[1]: "all" or "ids"; ARGV[2..]: ids (for "ids")
-- Returns: how many were requeued.
local base = KEYS[1]
local ids
if ARGV[1] == "all" then
  ids = redis.call("ZRANGE", base .. "dead", 0, -1)
else
  ids = {}
  for i = 2, #ARGV do ids[#ids + 1] = ARGV[i] end
end
local n = 0
for _, id in ipairs(ids) do
  if redis.call("ZREM", base .. "dead", id) == 1 then
    local key = base .. "j:" .. id
    redis.call("HSET", key, "a", 0, "s", "waiting")
    redis.call("HDEL", key, "finished")
    redis.call("ZADD", base .. "ready", redis.call("HGET", key, "score"), id)
    n = n + 1
  end
end
if n > 0 then
  redis.call("HINCRBY", base .. "stats", "requeued", n)
  redis.call("LPUSH", base .. "wake", "1")
  redis.call("LTRIM", base .. "wake", 0, 0)
end
return n
