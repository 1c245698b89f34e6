-- Adds jobs to a queue, or returns the id of a pending/active job with the same dedup key.
-- KEYS[1]: the queue's base key, e.g. "tsp:q:{default}:" (every key below starts with it)
-- ARGV[1]: now (ms); ARGV[2]: number of jobs N
-- then per job, 9 values: id, type, payload, priority (0-1023, higher first), max_attempts,
--   backoff ("exp:<ms>" or "fixed:<ms>"), timeout_ms, dedup key ("" = none), delay_ms
-- Returns: the N ids in order (the existing id where a dedup key matched).
local base = KEYS[1]
local now = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local out = {}
local added = 0
for i = 0, n - 1 do
  local o = 3 + i * 9
  local id, jtype, payload = ARGV[o], ARGV[o + 1], ARGV[o + 2]
  local prio, maxa, backoff = tonumber(ARGV[o + 3]), ARGV[o + 4], ARGV[o + 5]
  local timeout, dedup, delay = ARGV[o + 6], ARGV[o + 7], tonumber(ARGV[o + 8])
  local existing = false
  if dedup ~= "" then
    local other = redis.call("HGET", base .. "dedup", dedup)
    if other then
      local st = redis.call("HGET", base .. "j:" .. other, "s")
      if st == "waiting" or st == "delayed" or st == "active" then
        out[#out + 1] = other
        existing = true
      end
    end
  end
  if not existing then
    local seq = redis.call("INCR", base .. "seq")
    -- Higher priority sorts first; FIFO within a priority (seq fits 43 bits, score is exact).
    local score = (1023 - prio) * 8796093022208 + seq
    local key = base .. "j:" .. id
    local state = "waiting"
    if delay > 0 then state = "delayed" end
    redis.call("HSET", key, "type", jtype, "payload", payload, "prio", prio, "max", maxa,
      "backoff", backoff, "timeout", timeout, "dedup", dedup, "created", now,
      "run_at", now + delay, "a", 0, "s", state, "score", score)
    if delay > 0 then
      redis.call("ZADD", base .. "delayed", now + delay, id)
    else
      redis.call("ZADD", base .. "ready", score, id)
    end
    if dedup ~= "" then redis.call("HSET", base .. "dedup", dedup, id) end
    out[#out + 1] = id
    added = added + 1
  end
end
if added > 0 then
  redis.call("HINCRBY", base .. "stats", "enqueued", added)
  redis.call("LPUSH", base .. "wake", "1")
  redis.call("LTRIM", base .. "wake", 0, 0)
end
return out
