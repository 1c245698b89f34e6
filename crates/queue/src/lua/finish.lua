-- Acknowledges finished attempts: completed, retried later, or dead-lettered.
-- Only the lease that holds a job (the job is in `active:<lease id>`) may finish it; a stale
-- outcome is ignored, so a worker whose lease expired cannot overwrite the job's next attempt,
-- and an acknowledgement sent twice counts once.
-- A completed job's lease record gets its finish time and its id goes to the back of `done`
-- (completion order; retention trims its head).
-- KEYS[1]: the queue's base key
-- ARGV[1]: now (ms); ARGV[2]: keep_completed; ARGV[3]: keep_completed_age (ms);
-- ARGV[4]: keep_dead; ARGV[5]: keep_dead_age (ms); ARGV[6]: events channel;
-- ARGV[7]: "1" if any job of the batch has a dedup key; ARGV[8]: the lease id
-- ARGV[9]: K, the number of plain completions (no result to keep); then K pairs: id, the job's
--   lease record as completed ("attempts|started|run_at|<lease id>|<now>", built by the worker,
--   which knows each part: it saves building K strings here)
-- then M, the number of other outcomes; per job 5 values: id, outcome ("ok" | "retry" | "dead"),
--   result or error text, retry_at (ms; for "retry"), this attempt's lease record
--   ("attempts|started|run_at|<lease id>")
-- Returns: {L, s...}: the first L jobs (plain completions first, as given) completed; then one
--   status per remaining job: "completed" | "retrying" | "dead" | "stale". (When every plain
--   completion went through, as nearly always, that is one number instead of K strings.)
local now = tonumber(ARGV[1])
local holder = ARGV[8]
local active = base .. "active:" .. holder
local k = tonumber(ARGV[9])
local out = {0}
local done = {}
if k > 0 then
  local ids = {}
  for i = 1, k do ids[i] = ARGV[8 + 2 * i] end
  -- The common case: every job is still held, which SREM's count shows without asking about
  -- each job first.
  local removed = redis.call("SREM", active, unpack(ids))
  if removed == k then
    done = ids
    out[1] = k
    redis.call("HSET", base .. "lease", unpack(ARGV, 10, 9 + 2 * k))
  else
    -- Some were not held (an expired lease, an acknowledgement sent twice). The held ones
    -- were just removed; they are those with no lease record (a first attempt that never
    -- left this holder, see parse_lease) and those whose record names this holder and that
    -- are in no other state (recovery, release and retries clear the holder; completion
    -- sets the finish time; death puts the job in a set).
    local ls = hmget("lease", ids)
    local records, seen = {}, {}
    for i = 1, k do
      local id = ids[i]
      local held
      if ls[i] then
        local _, _, _, h, fin = parse_lease(ls[i])
        held = h == holder and fin == ""
            and not redis.call("ZSCORE", base .. "dead", id)
            and not redis.call("ZSCORE", base .. "delayed", id)
      else
        held = redis.call("HEXISTS", base .. "data", id) == 1
      end
      if held and not seen[id] then
        seen[id] = true
        done[#done + 1] = id
        records[#records + 1] = id; records[#records + 1] = ARGV[9 + 2 * i]
        out[#out + 1] = "completed"
      else
        out[#out + 1] = "stale"
      end
    end
    bulk("HSET", base .. "lease", records)
  end
  if #done > 0 then redis.call("RPUSH", base .. "done", unpack(done)) end
end

local o = 10 + 2 * k
local m = tonumber(ARGV[o])
o = o + 1
local dead = {}
if m > 0 then
  local ids = {}
  for i = 0, m - 1 do ids[#ids + 1] = ARGV[o + i * 5] end
  local held = in_set(active, ids)
  local valid, completions, results, retry_z, records = {}, {}, {}, {}, {}
  local failed, failed_att, failed_txt = {}, {}, {}
  for i = 1, m do
    local q = o + (i - 1) * 5
    local id, outcome, text, at, rec = ids[i], ARGV[q + 1], ARGV[q + 2], ARGV[q + 3], ARGV[q + 4]
    if not held[i] then
      out[#out + 1] = "stale"
    else
      valid[#valid + 1] = id
      local a, started = parse_lease(rec)
      if outcome == "ok" then
        out[#out + 1] = "completed"
        done[#done + 1] = id
        completions[#completions + 1] = id
        records[#records + 1] = id; records[#records + 1] = rec .. "|" .. ARGV[1]
        if text ~= "null" then results[#results + 1] = id; results[#results + 1] = text end
      else
        failed[#failed + 1] = id
        failed_att[#failed_att + 1] = a
        failed_txt[#failed_txt + 1] = text
        if outcome == "retry" then
          out[#out + 1] = "retrying"
          retry_z[#retry_z + 1] = at; retry_z[#retry_z + 1] = id
          records[#records + 1] = id; records[#records + 1] = lease_value(a, started, at, "")
        else
          out[#out + 1] = "dead"
          dead[#dead + 1] = id
          records[#records + 1] = id; records[#records + 1] = rec
        end
      end
    end
  end
  bulk("SREM", active, valid)
  bulk("HSET", base .. "lease", records)
  bulk("RPUSH", base .. "done", completions)
  bulk("HSET", base .. "results", results)
  if #retry_z > 0 then
    bulk("ZADD", base .. "delayed", retry_z)
    redis.call("HINCRBY", base .. "stats", "retried", #retry_z / 2)
    wake()
  end
  record_errors(failed, failed_att, failed_txt, now)
  if #failed > 0 then redis.call("HINCRBY", base .. "stats", "failed", #failed) end
  to_dead(dead, now, ARGV[6])
end
if ARGV[7] == "1" then
  release_dedup(done)
  release_dedup(dead)
end

-- Retention, a bounded amount per call so no call is slow.
local function trim(set, keep, age)
  local old = redis.call("ZRANGEBYSCORE", base .. set, "-inf", now - age, "LIMIT", 0, 1000)
  if #old > 0 then
    forget(old)
    bulk("ZREM", base .. set, old)
  end
  local excess = redis.call("ZCARD", base .. set) - keep
  if excess > 0 then
    if excess > 1000 then excess = 1000 end
    local gone = redis.call("ZRANGE", base .. set, 0, excess - 1)
    forget(gone)
    redis.call("ZREMRANGEBYRANK", base .. set, 0, excess - 1)
  end
end
-- Completed jobs: `done` is in completion order, so those past the count limit or older than
-- the age limit are at its head. Past the count it is arithmetic; for age, a binary search over
-- the first 1 000 reads about ten finish times.
local function trim_done(keep, age)
  local key = base .. "done"
  local n = redis.call("LLEN", key)
  local window = math.min(n, 1000)
  local drop = math.min(math.max(n - keep, 0), window)
  local function old(i)
    local _, _, _, _, fin = parse_lease(redis.call("HGET", base .. "lease", redis.call("LINDEX", key, i)))
    return (tonumber(fin) or 0) < now - age
  end
  if drop < window and old(drop) then
    local lo, hi = drop + 1, window -- the first young one is in [lo, hi]
    while lo < hi do
      local mid = math.floor((lo + hi) / 2)
      if old(mid) then lo = mid + 1 else hi = mid end
    end
    drop = lo
  end
  if drop > 0 then forget(redis.call("LPOP", key, drop)) end
end
if #done > 0 then
  trim_done(tonumber(ARGV[2]), tonumber(ARGV[3]))
  redis.call("HINCRBY", base .. "stats", "completed", #done)
  redis.call("PUBLISH", ARGV[6], cjson.encode({event = "completed", ids = done}))
end
if #dead > 0 then trim("dead", tonumber(ARGV[4]), tonumber(ARGV[5])) end
return out
