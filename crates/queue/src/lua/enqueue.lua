-- Adds jobs to a queue, or returns the id of a pending/active job with the same dedup key.
-- KEYS[1]: the queue's base key, e.g. "tsp:q:{default}:" (every key below starts with it)
-- ARGV[1]: now (ms)
-- ARGV[2]: F, the number of plain jobs (no delay, no dedup key); then F pairs id, spec (JSON
--   array, see queue.rs) for HSET; then G, the number of priority groups among them; per group:
--   priority, count, then that many ids in order (for RPUSH)
-- then S, the number of other jobs; per job 5 values: id, spec, priority (0-1023, higher first),
--   dedup key ("" = none), delay_ms
-- Returns: the ids of the S other jobs in order (the existing id where a dedup key matched).
local now = tonumber(ARGV[1])
local f = tonumber(ARGV[2])
local added = f
if f > 0 then redis.call("HSET", base .. "data", unpack(ARGV, 3, 2 + 2 * f)) end
local o = 3 + 2 * f
local groups = tonumber(ARGV[o])
o = o + 1
for _ = 1, groups do
  local p, cnt = ARGV[o], tonumber(ARGV[o + 1])
  redis.call("RPUSH", base .. "wait:" .. p, unpack(ARGV, o + 2, o + 1 + cnt))
  redis.call("ZADD", base .. "prios", 1023 - tonumber(p), p)
  o = o + 2 + cnt
end
local s = tonumber(ARGV[o])
o = o + 1
local out = {}
for i = 0, s - 1 do
  local q = o + i * 5
  local id, spec, prio, key, delay = ARGV[q], ARGV[q + 1], ARGV[q + 2], ARGV[q + 3], tonumber(ARGV[q + 4])
  local existing = nil
  if key ~= "" then
    local other = redis.call("HGET", base .. "dedup", key)
    -- Finishing releases a job's key, so a key still held names a pending or active job; the
    -- checks guard against a job removed by retention or an operator.
    if other and redis.call("HEXISTS", base .. "data", other) == 1
        and not completed_record(redis.call("HGET", base .. "lease", other))
        and not redis.call("ZSCORE", base .. "dead", other) then
      existing = other
    end
  end
  if existing then
    out[#out + 1] = existing
  else
    redis.call("HSET", base .. "data", id, spec)
    if delay > 0 then
      redis.call("ZADD", base .. "delayed", now + delay, id)
      redis.call("HSET", base .. "lease", id, lease_value(0, "", now + delay, ""))
    else
      redis.call("RPUSH", base .. "wait:" .. prio, id)
      redis.call("ZADD", base .. "prios", 1023 - tonumber(prio), prio)
    end
    if key ~= "" then
      redis.call("HSET", base .. "dedup", key, id)
      redis.call("HSET", base .. "dedupof", id, key)
    end
    added = added + 1
    out[#out + 1] = id
  end
end
if added > 0 then
  redis.call("HINCRBY", base .. "stats", "enqueued", added)
  wake()
end
return out
