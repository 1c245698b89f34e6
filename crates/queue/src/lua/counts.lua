-- Per-state sizes: O(priorities in use + workers holding jobs), never O(jobs).
-- KEYS[1]: the queue's base key
-- Returns: { waiting, delayed, active, completed, dead, dead_unhandled, paused (0/1), stats (flat) }
local active = 0
for _, holder in ipairs(redis.call("ZRANGE", base .. "workers", 0, -1)) do
  active = active + redis.call("SCARD", base .. "active:" .. holder)
end
return {
  waiting_count(),
  redis.call("ZCARD", base .. "delayed"),
  active,
  redis.call("LLEN", base .. "done"),
  redis.call("ZCARD", base .. "dead"),
  redis.call("ZCARD", base .. "deadhook"),
  redis.call("EXISTS", base .. "paused"),
  redis.call("HGETALL", base .. "stats"),
}
