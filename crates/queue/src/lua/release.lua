-- Graceful shutdown: returns leases of jobs that did not finish in the grace period. The
-- interrupted attempt is not counted; the job keeps its place in line.
-- KEYS[1]: the queue's base key
-- ARGV: pairs of id, token
-- Returns: how many were returned.
local base = KEYS[1]
local returned = 0
for i = 1, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  local key = base .. "j:" .. id
  if redis.call("HGET", key, "token") == token and redis.call("ZREM", base .. "active", id) == 1 then
    redis.call("HDEL", key, "token")
    redis.call("HINCRBY", key, "a", -1)
    redis.call("HSET", key, "s", "waiting")
    redis.call("ZADD", base .. "ready", redis.call("HGET", key, "score"), id)
    returned = returned + 1
  end
end
if returned > 0 then
  redis.call("LPUSH", base .. "wake", "1")
  redis.call("LTRIM", base .. "wake", 0, 0)
end
return returned
