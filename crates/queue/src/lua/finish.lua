-- Acknowledges finished attempts: completed, retried later, or dead-lettered.
-- Only the lease that holds a job (the job is in `active:<lease id>`) may finish it; a stale
-- outcome is ignored, so a worker whose lease expired cannot overwrite the job's next attempt,
-- and an acknowledgement sent twice counts once.
-- KEYS[1]: the queue's base key
-- ARGV[1]: now (ms); ARGV[2]: keep_completed; ARGV[3]: keep_completed_age (ms);
-- ARGV[4]: keep_dead; ARGV[5]: keep_dead_age (ms); ARGV[6]: events channel;
-- ARGV[7]: "1" if any job of the batch has a dedup key; ARGV[8]: the lease id
-- ARGV[9]: K, the number of plain completions (no result to keep); then their K ids
-- then M, the number of other outcomes; per job 4 values: id, outcome ("ok" | "retry" | "dead"),
--   result or error text, retry_at (ms; for "retry")
-- Returns: {L, s...}: the first L jobs (plain completions first, as given) completed; then one
--   status per remaining job: "completed" | "retrying" | "dead" | "stale". (When every plain
--   completion went through, as nearly always, that is one number instead of K strings.)
local now = tonumber(ARGV[1])
local active = base .. "active:" .. ARGV[8]
local k = tonumber(ARGV[9])
local out = {0}
local done = {}
if k > 0 then
  -- The common case: every job is still held, which SREM's count shows without asking about
  -- each job first.
  local removed = redis.call("SREM", active, unpack(ARGV, 10, 9 + k))
  local ids = {unpack(ARGV, 10, 9 + k)}
  if removed == k then
    done = ids
    out[1] = k
  else
    -- Some were not held (an expired lease, an acknowledgement sent twice). The held ones
    -- were just removed; they are the ones whose lease record names this holder and that are
    -- in no other state (recovery, release and retries clear the holder; completion and
    -- death put the job in a set).
    local ls = hmget("lease", ids)
    for i = 1, k do
      local _, _, _, holder = parse_lease(ls[i])
      local id = ids[i]
      if holder == ARGV[8] and not redis.call("ZSCORE", base .. "completed", id)
          and not redis.call("ZSCORE", base .. "dead", id)
          and not redis.call("ZSCORE", base .. "delayed", id) then
        done[#done + 1] = id
        out[#out + 1] = "completed"
      else
        out[#out + 1] = "stale"
      end
    end
  end
  if #done > 0 then
    -- Built here from strings Lua already has: cheaper than passing them in.
    local z = {}
    for i = 1, #done do z[2 * i - 1] = ARGV[1]; z[2 * i] = done[i] end
    redis.call("ZADD", base .. "completed", unpack(z))
  end
end

local o = 10 + k
local m = tonumber(ARGV[o])
o = o + 1
local dead = {}
if m > 0 then
  local ids = {}
  for i = 0, m - 1 do ids[#ids + 1] = ARGV[o + i * 4] end
  local held = in_set(active, ids)
  local ls = hmget("lease", ids)
  local valid, done_z, results, retry_z, records = {}, {}, {}, {}, {}
  local failed, failed_att, failed_txt = {}, {}, {}
  for i = 1, m do
    local q = o + (i - 1) * 4
    local id, outcome, text, at = ids[i], ARGV[q + 1], ARGV[q + 2], ARGV[q + 3]
    if not held[i] then
      out[#out + 1] = "stale"
    else
      valid[#valid + 1] = id
      local a, started = parse_lease(ls[i])
      if outcome == "ok" then
        out[#out + 1] = "completed"
        done[#done + 1] = id
        done_z[#done_z + 1] = ARGV[1]; done_z[#done_z + 1] = id
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
        end
      end
    end
  end
  bulk("SREM", active, valid)
  bulk("ZADD", base .. "completed", done_z)
  bulk("HSET", base .. "results", results)
  if #retry_z > 0 then
    bulk("ZADD", base .. "delayed", retry_z)
    bulk("HSET", base .. "lease", records)
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
if #done > 0 then
  trim("completed", tonumber(ARGV[2]), tonumber(ARGV[3]))
  redis.call("HINCRBY", base .. "stats", "completed", #done)
  redis.call("PUBLISH", ARGV[6], cjson.encode({event = "completed", ids = done}))
end
if #dead > 0 then trim("dead", tonumber(ARGV[4]), tonumber(ARGV[5])) end
return out
