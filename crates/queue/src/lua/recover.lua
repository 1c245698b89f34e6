-- Stalled-job recovery: the jobs of workers whose lease deadline passed (they died or stopped
-- heartbeating) go back to the front of their line, the lost attempt counted; jobs out of
-- attempts are dead-lettered. The lease id is evicted: that worker's late outcomes are stale
-- and its next fetch is refused (it starts a new lease id).
-- KEYS[1]: the queue's base key
-- ARGV[1]: now (ms); ARGV[2]: at most this many workers; ARGV[3]: events channel
-- Returns: { recovered, dead }
local now = tonumber(ARGV[1])
local expired = redis.call("ZRANGEBYSCORE", base .. "workers", "-inf", now, "LIMIT", 0, tonumber(ARGV[2]))
local back_n, dead_n = 0, 0
for _, holder in ipairs(expired) do
  redis.call("ZREM", base .. "workers", holder)
  local key = base .. "active:" .. holder
  local ids = redis.call("SMEMBERS", key)
  if #ids > 0 then
    redis.call("DEL", key)
    -- Ids grow with enqueue order (per producer): sorted, they go back in line in that order.
    table.sort(ids)
    redis.call("ZADD", base .. "evicted", now, holder)
    local ls = hmget("lease", ids)
    local specs = hmget("data", ids)
    local texts, atts, records, back, dead = {}, {}, {}, {}, {}
    for i = 1, #ids do
      local a, started, run_at = parse_held(ls[i])
      atts[i] = a
      texts[i] = "lease expired: the worker died or stopped heartbeating"
      records[#records + 1] = ids[i]; records[#records + 1] = lease_value(a, started, run_at, "")
      local m, readable = spec_field(specs[i], 4)
      local max = tonumber(m) or 1
      if not readable then
        texts[i] = "lease expired, and the job's spec is unreadable (not a JSON array): dead-lettered"
        max = 0
      end
      if a >= max then dead[#dead + 1] = ids[i] else back[#back + 1] = ids[i] end
    end
    bulk("HSET", base .. "lease", records)
    record_errors(ids, atts, texts, now)
    push_waiting(back, true)
    to_dead(dead, now, ARGV[3])
    release_dedup(dead)
    redis.call("HINCRBY", base .. "stats", "stalled", #ids)
    back_n = back_n + #back
    dead_n = dead_n + #dead
  end
end
-- An evicted lease id is remembered for a day: long enough for any late outcome of it.
redis.call("ZREMRANGEBYSCORE", base .. "evicted", "-inf", now - 86400000)
if back_n > 0 then wake() end
return {back_n, dead_n}
