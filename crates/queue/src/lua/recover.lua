-- Stalled-job recovery: jobs whose lease expired (their worker died or hung) go back to the
-- ready set, the lost attempt counted; jobs out of attempts are dead-lettered.
-- KEYS[1]: the queue's base key
-- ARGV[1]: now (ms); ARGV[2]: at most this many; ARGV[3]: events channel
-- Returns: { recovered, dead }
local base = KEYS[1]
local now = tonumber(ARGV[1])
local ids = redis.call("ZRANGEBYSCORE", base .. "active", "-inf", now, "LIMIT", 0, tonumber(ARGV[2]))
local recovered, dead = 0, 0
local dead_ids = {}
for _, id in ipairs(ids) do
  local key = base .. "j:" .. id
  redis.call("ZREM", base .. "active", id)
  redis.call("HDEL", key, "token")
  local attempts = tonumber(redis.call("HGET", key, "a"))
  local errs = redis.call("HGET", key, "errors")
  local list = {}
  if errs then list = cjson.decode(errs) end
  local text = "lease expired: the worker died or stopped heartbeating"
  list[#list + 1] = {attempt = attempts, at = now, error = text}
  while #list > 25 do table.remove(list, 1) end
  redis.call("HSET", key, "errors", cjson.encode(list), "error", text)
  if attempts >= tonumber(redis.call("HGET", key, "max")) then
    redis.call("HSET", key, "s", "dead", "finished", now)
    redis.call("ZADD", base .. "dead", now, id)
    local d = redis.call("HGET", key, "dedup")
    if d and d ~= "" and redis.call("HGET", base .. "dedup", d) == id then
      redis.call("HDEL", base .. "dedup", d)
    end
    dead = dead + 1
    dead_ids[#dead_ids + 1] = id
  else
    redis.call("HSET", key, "s", "waiting")
    redis.call("ZADD", base .. "ready", redis.call("HGET", key, "score"), id)
    recovered = recovered + 1
  end
end
if #ids > 0 then
  redis.call("HINCRBY", base .. "stats", "stalled", #ids)
  if dead > 0 then redis.call("HINCRBY", base .. "stats", "dead", dead) end
  redis.call("LPUSH", base .. "wake", "1")
  redis.call("LTRIM", base .. "wake", 0, 0)
end
if #dead_ids > 0 then
  redis.call("PUBLISH", ARGV[3], cjson.encode({event = "failed", ids = dead_ids}))
end
return {recovered, dead}
