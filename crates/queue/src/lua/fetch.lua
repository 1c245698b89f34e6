-- Leases up to N waiting jobs to a worker, promoting due delayed jobs first.
-- A worker's leases are one entry in `workers` (lease id -> deadline, pushed forward by its
-- heartbeat) and the set `active:<lease id>` of the jobs it holds: one sorted-set write per
-- batch instead of one per job. A lease id whose deadline passed is evicted by `recover`; an
-- evicted lease id is refused here, so a worker that lost its jobs starts a new lease id
-- rather than mixing old and new attempts.
-- KEYS[1]: the queue's base key
-- ARGV[1]: now (ms); ARGV[2]: N; ARGV[3]: lease deadline (ms); ARGV[4]: lease id
-- Returns: {"evicted"} or { next_delayed_due_ms or -1, waiting_left, specs, before, ids }
--   where `before` is flat pairs (index from 0, lease record before this attempt) for the jobs
--   that had one; the others are first attempts.
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
    -- "~<id>": a job with a lease record (see push_waiting); the others are first attempts.
    local marked = {}
    for i = 1, #ids do
      if string.byte(ids[i], 1) == 126 then
        ids[i] = string.sub(ids[i], 2)
        marked[#marked + 1] = i
      end
    end
    specs = hmget("data", ids)
    -- A job whose data was deleted (by hand) cannot run: it leaves the line.
    local n = #ids
    for i = 1, #ids do
      if not specs[i] then n = n - 1 end
    end
    if n < #ids then
      local keep_ids, keep_specs, keep_marked, at = {}, {}, {}, {}
      for i = 1, #ids do
        if specs[i] then
          keep_ids[#keep_ids + 1] = ids[i]; keep_specs[#keep_specs + 1] = specs[i]
          at[i] = #keep_ids
        end
      end
      for k = 1, #marked do
        if at[marked[k]] then keep_marked[#keep_marked + 1] = at[marked[k]] end
      end
      ids, specs, marked = keep_ids, keep_specs, keep_marked
    end
    -- First attempts get no lease record here (see parse_lease): a hash write per job saved.
    if #marked > 0 then
      local ls = {}
      for k = 1, #marked do ls[k] = ids[marked[k]] end
      ls = hmget("lease", ls)
      local records = {}
      for k = 1, #marked do
        local i = marked[k]
        local a, _, run_at = parse_lease(ls[k])
        records[#records + 1] = ids[i]
        records[#records + 1] = lease_value(a + 1, ARGV[1], run_at, holder)
        before[#before + 1] = i - 1
        before[#before + 1] = ls[k]
      end
      bulk("HSET", base .. "lease", records)
    end
    bulk("SADD", base .. "active:" .. holder, ids)
    redis.call("ZADD", base .. "workers", ARGV[3], holder)
  end
end
local nxt = redis.call("ZRANGE", base .. "delayed", 0, 0, "WITHSCORES")
local next_due = -1
if #nxt > 0 then next_due = tonumber(nxt[2]) end
local left = waiting_count()
if left > 0 and #ids > 0 then wake() end
return {next_due, left, specs, before, ids}
