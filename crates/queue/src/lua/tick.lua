-- Claims one tick of a schedule and enqueues its job, in one step: however many workers race
-- for a tick, the one whose expected tick still stands claims it, and the others see it moved.
-- KEYS[1]: the queue's base key
-- ARGV[1]: now (ms); ARGV[2]: schedule name; ARGV[3]: the tick claimed (ms, as read from
--   sched:next); ARGV[4]: the following tick (ms), or "" when there is none
-- ARGV[5]: job id; ARGV[6]: spec; ARGV[7]: priority; ARGV[8]: dedup key; ARGV[9]: the tick the
--   job stands for (later than ARGV[3] when missed ticks are skipped)
-- Returns 1 when this call claimed the tick (and enqueued its job), else 0.
local name = ARGV[2]
local current = redis.call("ZSCORE", base .. "sched:next", name)
if not current or tonumber(current) ~= tonumber(ARGV[3]) then return 0 end
if ARGV[4] == "" then
  redis.call("ZREM", base .. "sched:next", name)
else
  redis.call("ZADD", base .. "sched:next", ARGV[4], name)
end
local id, spec, prio, key = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
redis.call("HSET", base .. "data", id, spec)
redis.call("RPUSH", base .. "wait:" .. prio, id)
redis.call("ZADD", base .. "prios", 1023 - tonumber(prio), prio)
redis.call("HSET", base .. "dedup", key, id)
redis.call("HSET", base .. "dedupof", id, key)
redis.call("HSET", base .. "sched:last", name, ARGV[9])
redis.call("HSET", base .. "sched:lastjob", name, id)
redis.call("HINCRBY", base .. "stats", "enqueued", 1)
wake()
return 1
