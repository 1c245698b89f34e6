-- Adds jobs to a queue, or returns the id of a pending/active job with the same dedup key.
-- KEYS[1]: the queue's base key, e.g. "tsp:q:{default}:" (every key below starts with it)
-- ARGV[1]: now (ms); ARGV[2]: number of jobs N
-- then per job, 5 values: id, spec (JSON array, see queue.rs), priority (0-1023, higher first),
--   dedup key ("" = none), delay_ms
-- Returns: the N ids in order (the existing id where a dedup key matched).
local now = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local seq = redis.call("INCRBY", base .. "seq", n) - n
local out, data, ready, delayed, leases, dedupof = {}, {}, {}, {}, {}, {}
for i = 0, n - 1 do
  local o = 3 + i * 5
  local id, spec, prio, key, delay = ARGV[o], ARGV[o + 1], tonumber(ARGV[o + 2]), ARGV[o + 3], tonumber(ARGV[o + 4])
  local existing = nil
  if key ~= "" then
    local other = redis.call("HGET", base .. "dedup", key)
    if other and (redis.call("ZSCORE", base .. "ready", other) or redis.call("ZSCORE", base .. "delayed", other)
        or redis.call("ZSCORE", base .. "active", other)) then
      existing = other
    end
  end
  if existing then
    out[#out + 1] = existing
  else
    seq = seq + 1
    -- Higher priority sorts first; FIFO within a priority (seq fits 43 bits: the score is exact).
    local score = (1023 - prio) * 8796093022208 + seq
    data[#data + 1] = id; data[#data + 1] = spec
    if delay > 0 then
      delayed[#delayed + 1] = now + delay; delayed[#delayed + 1] = id
      leases[#leases + 1] = id; leases[#leases + 1] = lease_value(0, "", "", now + delay, score)
    else
      ready[#ready + 1] = score; ready[#ready + 1] = id
    end
    if key ~= "" then
      dedupof[#dedupof + 1] = id; dedupof[#dedupof + 1] = key
      -- A later job in this same batch with the same key must see this one.
      redis.call("HSET", base .. "dedup", key, id)
      redis.call("ZADD", base .. (delay > 0 and "delayed" or "ready"), delay > 0 and (now + delay) or score, id)
    end
    out[#out + 1] = id
  end
end
local added = #data / 2
if added > 0 then
  bulk("HSET", base .. "data", data)
  if #ready > 0 then bulk("ZADD", base .. "ready", ready) end
  if #delayed > 0 then bulk("ZADD", base .. "delayed", delayed) end
  if #leases > 0 then bulk("HSET", base .. "lease", leases) end
  if #dedupof > 0 then bulk("HSET", base .. "dedupof", dedupof) end
  redis.call("HINCRBY", base .. "stats", "enqueued", added)
  wake()
end
return out
