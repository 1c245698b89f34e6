-- Acknowledges finished attempts: completed, retried later, or dead-lettered.
-- Only the holder of the current lease (token, and still in `active`) may finish a job; a stale
-- outcome is ignored, so a worker whose lease expired cannot overwrite the job's next attempt,
-- and an acknowledgement sent twice counts once.
-- KEYS[1]: the queue's base key
-- ARGV[1]: now (ms); ARGV[2]: N; ARGV[3]: keep_completed; ARGV[4]: keep_completed_age (ms);
-- ARGV[5]: keep_dead; ARGV[6]: keep_dead_age (ms); ARGV[7]: events channel;
-- ARGV[8]: "1" if any job of the batch has a dedup key
-- then per job 5 values: id, token, outcome ("ok" | "retry" | "dead"), result or error text,
--   retry_at (ms; for "retry")
-- Returns: per job "completed" | "retrying" | "dead" | "stale".
local now = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local ids = {}
for i = 0, n - 1 do ids[#ids + 1] = ARGV[9 + i * 5] end
local ls = hmget("lease", ids)
local active = members("active", ids)
local out = {}
local valid, done, done_z, results, retry_z, dead_z, leases = {}, {}, {}, {}, {}, {}, {}
local failed, failed_att, failed_txt, dead = {}, {}, {}, {}
for i = 1, n do
  local o = 9 + (i - 1) * 5
  local token, outcome, text, at = ARGV[o + 1], ARGV[o + 2], ARGV[o + 3], ARGV[o + 4]
  local a, held, started, _, score = parse_lease(ls[i])
  if held ~= token or not active[i] then
    out[i] = "stale"
  else
    local id = ids[i]
    valid[#valid + 1] = id
    if outcome == "ok" then
      out[i] = "completed"
      done[#done + 1] = id
      done_z[#done_z + 1] = now; done_z[#done_z + 1] = id
      if text ~= "null" then results[#results + 1] = id; results[#results + 1] = text end
    else
      failed[#failed + 1] = id
      failed_att[#failed_att + 1] = a
      failed_txt[#failed_txt + 1] = text
      if outcome == "retry" then
        out[i] = "retrying"
        retry_z[#retry_z + 1] = tonumber(at); retry_z[#retry_z + 1] = id
        leases[#leases + 1] = id; leases[#leases + 1] = lease_value(a, "", started, at, score)
      else
        out[i] = "dead"
        dead[#dead + 1] = id
        dead_z[#dead_z + 1] = now; dead_z[#dead_z + 1] = id
      end
    end
  end
end
if #valid > 0 then bulk("ZREM", base .. "active", valid) end
if #done_z > 0 then bulk("ZADD", base .. "completed", done_z) end
if #results > 0 then bulk("HSET", base .. "results", results) end
if #retry_z > 0 then
  bulk("ZADD", base .. "delayed", retry_z)
  bulk("HSET", base .. "lease", leases)
  wake()
end
if #dead_z > 0 then
  bulk("ZADD", base .. "dead", dead_z)
  bulk("ZADD", base .. "deadhook", dead_z)
end
record_errors(failed, failed_att, failed_txt, now)
if ARGV[8] == "1" then
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
if #done > 0 then trim("completed", tonumber(ARGV[3]), tonumber(ARGV[4])) end
if #dead > 0 then trim("dead", tonumber(ARGV[5]), tonumber(ARGV[6])) end

if #done > 0 then redis.call("HINCRBY", base .. "stats", "completed", #done) end
if #failed > 0 then redis.call("HINCRBY", base .. "stats", "failed", #failed) end
if #retry_z > 0 then redis.call("HINCRBY", base .. "stats", "retried", #retry_z / 2) end
if #dead > 0 then redis.call("HINCRBY", base .. "stats", "dead", #dead) end
if #done > 0 then
  redis.call("PUBLISH", ARGV[7], cjson.encode({event = "completed", ids = done}))
end
if #dead > 0 then
  redis.call("PUBLISH", ARGV[7], cjson.encode({event = "failed", ids = dead}))
end
return out
