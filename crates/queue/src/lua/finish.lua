-- Acknowledges finished attempts: completed, retried later, or dead-lettered.
-- Only the holder of the current lease (token) may finish a job; a stale token is ignored, so a
-- worker whose lease expired cannot overwrite the outcome of the job's next attempt.
-- KEYS[1]: the queue's base key
-- ARGV[1]: now (ms); ARGV[2]: N; ARGV[3]: keep_completed; ARGV[4]: keep_completed_age (ms);
-- ARGV[5]: keep_dead; ARGV[6]: keep_dead_age (ms); ARGV[7]: events channel
-- then per job 5 values: id, token, outcome ("ok" | "retry" | "dead"), result or error text,
--   retry_at (ms; for "retry")
-- Returns: per job "completed" | "retrying" | "dead" | "stale".
local base = KEYS[1]
local now = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local out = {}
local completed, retried, dead, failed = 0, 0, 0, 0
local done_ids, dead_ids = {}, {}

local function record_error(key, attempt, text)
  local errs = redis.call("HGET", key, "errors")
  local list = {}
  if errs then list = cjson.decode(errs) end
  list[#list + 1] = {attempt = tonumber(attempt), at = now, error = text}
  while #list > 25 do table.remove(list, 1) end
  redis.call("HSET", key, "errors", cjson.encode(list), "error", text)
end

local function release_dedup(key, id)
  local d = redis.call("HGET", key, "dedup")
  if d and d ~= "" and redis.call("HGET", base .. "dedup", d) == id then
    redis.call("HDEL", base .. "dedup", d)
  end
end

for i = 0, n - 1 do
  local o = 8 + i * 5
  local id, token, outcome, text, retry_at = ARGV[o], ARGV[o + 1], ARGV[o + 2], ARGV[o + 3], ARGV[o + 4]
  local key = base .. "j:" .. id
  if redis.call("HGET", key, "token") ~= token or redis.call("ZREM", base .. "active", id) == 0 then
    out[#out + 1] = "stale"
  else
    redis.call("HDEL", key, "token")
    if outcome == "ok" then
      redis.call("HSET", key, "s", "completed", "finished", now, "result", text)
      redis.call("ZADD", base .. "completed", now, id)
      release_dedup(key, id)
      completed = completed + 1
      done_ids[#done_ids + 1] = id
      out[#out + 1] = "completed"
    else
      failed = failed + 1
      record_error(key, redis.call("HGET", key, "a"), text)
      if outcome == "retry" then
        redis.call("HSET", key, "s", "delayed", "run_at", retry_at)
        redis.call("ZADD", base .. "delayed", retry_at, id)
        retried = retried + 1
        out[#out + 1] = "retrying"
      else
        redis.call("HSET", key, "s", "dead", "finished", now)
        redis.call("ZADD", base .. "dead", now, id)
        release_dedup(key, id)
        dead = dead + 1
        dead_ids[#dead_ids + 1] = id
        out[#out + 1] = "dead"
      end
    end
  end
end

-- Retention, a bounded amount per call so no call is slow.
local function trim(set, keep, age)
  local old = redis.call("ZRANGEBYSCORE", base .. set, "-inf", now - age, "LIMIT", 0, 200)
  for _, id in ipairs(old) do
    redis.call("DEL", base .. "j:" .. id)
    redis.call("ZREM", base .. set, id)
  end
  local excess = redis.call("ZCARD", base .. set) - keep
  if excess > 0 then
    if excess > 200 then excess = 200 end
    local ids = redis.call("ZRANGE", base .. set, 0, excess - 1)
    for _, id in ipairs(ids) do redis.call("DEL", base .. "j:" .. id) end
    redis.call("ZREMRANGEBYRANK", base .. set, 0, excess - 1)
  end
end
if completed > 0 then trim("completed", tonumber(ARGV[3]), tonumber(ARGV[4])) end
if dead > 0 then trim("dead", tonumber(ARGV[5]), tonumber(ARGV[6])) end

if completed > 0 then redis.call("HINCRBY", base .. "stats", "completed", completed) end
if failed > 0 then redis.call("HINCRBY", base .. "stats", "failed", failed) end
if retried > 0 then redis.call("HINCRBY", base .. "stats", "retried", retried) end
if dead > 0 then redis.call("HINCRBY", base .. "stats", "dead", dead) end
if retried > 0 then
  redis.call("LPUSH", base .. "wake", "1")
  redis.call("LTRIM", base .. "wake", 0, 0)
end
if #done_ids > 0 then
  redis.call("PUBLISH", ARGV[7], cjson.encode({event = "completed", ids = done_ids}))
end
if #dead_ids > 0 then
  redis.call("PUBLISH", ARGV[7], cjson.encode({event = "failed", ids = dead_ids}))
end
return out
