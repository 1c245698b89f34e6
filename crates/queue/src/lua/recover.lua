-- Stalled-job recovery: jobs whose lease expired (their worker died or hung) go back to the
-- ready set, the lost attempt counted; jobs out of attempts are dead-lettered.
-- KEYS[1]: the queue's base key
-- ARGV[1]: now (ms); ARGV[2]: at most this many; ARGV[3]: events channel
-- Returns: { recovered, dead }
local now = tonumber(ARGV[1])
local ids = redis.call("ZRANGEBYSCORE", base .. "active", "-inf", now, "LIMIT", 0, tonumber(ARGV[2]))
if #ids == 0 then return {0, 0} end
bulk("ZREM", base .. "active", ids)
local ls = hmget("lease", ids)
local specs = hmget("data", ids)
local texts, atts, leases = {}, {}, {}
local back, dead, dead_ids = {}, {}, {}
for i = 1, #ids do
  local a, _, started, run_at, score = parse_lease(ls[i])
  atts[i] = a
  texts[i] = "lease expired: the worker died or stopped heartbeating"
  leases[#leases + 1] = ids[i]; leases[#leases + 1] = lease_value(a, "", started, run_at, score)
  local max = 1
  if specs[i] then max = tonumber(cjson.decode(specs[i])[4]) or 1 end
  if a >= max then
    dead[#dead + 1] = now; dead[#dead + 1] = ids[i]
    dead_ids[#dead_ids + 1] = ids[i]
  else
    if score == "" then score = new_score(ids[i]) end
    back[#back + 1] = score; back[#back + 1] = ids[i]
  end
end
bulk("HSET", base .. "lease", leases)
record_errors(ids, atts, texts, now)
if #back > 0 then bulk("ZADD", base .. "ready", back) end
if #dead > 0 then
  bulk("ZADD", base .. "dead", dead)
  bulk("ZADD", base .. "deadhook", dead)
  release_dedup(dead_ids)
  redis.call("HINCRBY", base .. "stats", "dead", #dead_ids)
  redis.call("PUBLISH", ARGV[3], cjson.encode({event = "failed", ids = dead_ids}))
end
redis.call("HINCRBY", base .. "stats", "stalled", #ids)
wake()
return {#back / 2, #dead_ids}
