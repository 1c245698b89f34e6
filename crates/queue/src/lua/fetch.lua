-- Leases up to N waiting jobs to a worker, promoting due delayed jobs first.
-- A worker's leases are one entry in `workers` (lease id -> deadline, pushed forward by its
-- heartbeat) and the set `active:<lease id>` of the jobs it holds: one sorted-set write per
-- batch instead of one per job. A lease id whose deadline passed is evicted by `recover`; an
-- evicted lease id is refused here, so a worker that lost its jobs starts a new lease id
-- rather than mixing old and new attempts.
-- KEYS[1]: the queue's base key
-- ARGV[1]: now (ms); ARGV[2]: N; ARGV[3]: lease deadline (ms); ARGV[4]: lease id;
-- ARGV[5]: the lease record of a first attempt ("1|<now>||<lease id>")
-- Returns: {"evicted"} or { next_delayed_due_ms or -1, waiting_left, ids, specs, records }
--   where records are the jobs' lease records before this attempt (false for a first attempt).
local now = tonumber(ARGV[1])
local want = tonumber(ARGV[2])
local holder = ARGV[4]
if redis.call("ZSCORE", base .. "evicted", holder) then return {"evicted"} end

local due = redis.call("ZRANGEBYSCORE", base .. "delayed", "-inf", now, "LIMIT", 0, 1000)
if #due > 0 then
  bulk("ZREM", base .. "delayed", due)
  push_waiting(due, false)
end

local ids, specs, before = {}, {}, {}
if redis.call("EXISTS", base .. "paused") == 0 then
  while #ids < want do
    local top = redis.call("ZRANGE", base .. "prios", 0, 0)
    if #top == 0 then break end
    local key = base .. "wait:" .. top[1]
    local got = redis.call("LPOP", key, want - #ids)
    if got then
      if #ids == 0 then ids = got else for i = 1, #got do ids[#ids + 1] = got[i] end end
    end
    if redis.call("LLEN", key) == 0 then redis.call("ZREM", base .. "prios", top[1]) end
  end
  if #ids > 0 then
    specs = hmget("data", ids)
    before = hmget("lease", ids)
    local records = {}
    local first = ARGV[5]
    for i = 1, #ids do
      records[#records + 1] = ids[i]
      if before[i] then
        local a, _, run_at = parse_lease(before[i])
        records[#records + 1] = lease_value(a + 1, ARGV[1], run_at, holder)
      else
        records[#records + 1] = first
      end
    end
    bulk("HSET", base .. "lease", records)
    bulk("SADD", base .. "active:" .. holder, ids)
    redis.call("ZADD", base .. "workers", ARGV[3], holder)
  end
end
local nxt = redis.call("ZRANGE", base .. "delayed", 0, 0, "WITHSCORES")
local next_due = -1
if #nxt > 0 then next_due = tonumber(nxt[2]) end
local left = waiting_count()
if left > 0 and #ids > 0 then wake() end
return {next_due, left, ids, specs, before}
