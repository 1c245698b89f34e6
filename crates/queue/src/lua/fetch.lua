-- Leases up to N ready jobs to a worker, promoting due delayed jobs first.
-- KEYS[1]: the queue's base key
-- ARGV[1]: now (ms); ARGV[2]: N; ARGV[3]: lease (ms); ARGV[4]: worker id (lease token prefix)
-- Returns: { next_delayed_due_ms or -1, ready_left, then per job 11 values:
--   id, type, payload, attempts (this one included), max_attempts, backoff, timeout_ms,
--   token, run_at (ms), priority, created (ms) }
local base = KEYS[1]
local now = tonumber(ARGV[1])
local want = tonumber(ARGV[2])
local lease = tonumber(ARGV[3])
local worker = ARGV[4]

local due = redis.call("ZRANGEBYSCORE", base .. "delayed", "-inf", now, "LIMIT", 0, 1000)
for _, id in ipairs(due) do
  local key = base .. "j:" .. id
  redis.call("ZREM", base .. "delayed", id)
  redis.call("ZADD", base .. "ready", redis.call("HGET", key, "score"), id)
  redis.call("HSET", key, "s", "waiting")
end

local out = {-1, 0}
if redis.call("EXISTS", base .. "paused") == 0 then
  local popped = redis.call("ZPOPMIN", base .. "ready", want)
  for i = 1, #popped, 2 do
    local id = popped[i]
    local key = base .. "j:" .. id
    local attempts = redis.call("HINCRBY", key, "a", 1)
    local token = worker .. ":" .. attempts
    redis.call("HSET", key, "s", "active", "started", now, "token", token)
    redis.call("ZADD", base .. "active", now + lease, id)
    local f = redis.call("HMGET", key, "type", "payload", "max", "backoff", "timeout", "run_at",
      "prio", "created")
    local n = #out
    out[n + 1] = id
    out[n + 2] = f[1]
    out[n + 3] = f[2]
    out[n + 4] = attempts
    out[n + 5] = f[3]
    out[n + 6] = f[4]
    out[n + 7] = f[5]
    out[n + 8] = token
    out[n + 9] = f[6]
    out[n + 10] = f[7]
    out[n + 11] = f[8]
  end
end
local nxt = redis.call("ZRANGE", base .. "delayed", 0, 0, "WITHSCORES")
if #nxt > 0 then out[1] = tonumber(nxt[2]) end
out[2] = redis.call("ZCARD", base .. "ready")
if out[2] > 0 and #out > 2 then
  -- More is waiting: wake another worker.
  redis.call("LPUSH", base .. "wake", "1")
  redis.call("LTRIM", base .. "wake", 0, 0)
end
return out
