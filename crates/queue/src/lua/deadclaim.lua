-- Claims dead jobs whose dead-letter hook has not run, for one worker to run it. A claim lasts
-- ARGV[2] ms: if the worker dies, another one claims the job again after that (hooks are
-- idempotent).
-- KEYS[1]: the queue's base key
-- ARGV[1]: now (ms); ARGV[2]: claim duration (ms); ARGV[3]: at most this many
-- Returns: flat { id, spec, ... } (jobs whose data is gone are dropped from the set)
local now = tonumber(ARGV[1])
local ids = redis.call("ZRANGEBYSCORE", base .. "deadhook", "-inf", now, "LIMIT", 0, tonumber(ARGV[3]))
if #ids == 0 then return {} end
local specs = hmget("data", ids)
local out, claims, gone = {}, {}, {}
for i = 1, #ids do
  if specs[i] then
    out[#out + 1] = ids[i]; out[#out + 1] = specs[i]
    claims[#claims + 1] = now + tonumber(ARGV[2]); claims[#claims + 1] = ids[i]
  else
    gone[#gone + 1] = ids[i]
  end
end
if #claims > 0 then bulk("ZADD", base .. "deadhook", claims) end
if #gone > 0 then bulk("ZREM", base .. "deadhook", gone) end
return out
