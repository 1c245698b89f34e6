-- Requeues dead-lettered jobs: attempts start over, the error history is kept. A job whose
-- dead-letter hook is running right now (claimed) stays dead: requeueing it would race the hook
-- (a compensation could undo the new attempt's work). One whose hook has not started no longer
-- needs it.
-- KEYS[1]: the queue's base key
-- ARGV[1]: now (ms); ARGV[2]: "all" or "ids"; ARGV[3..]: ids (for "ids")
-- Returns: { requeued, skipped because their hook is running }
local now = tonumber(ARGV[1])
local ids
if ARGV[2] == "all" then
  ids = redis.call("ZRANGE", base .. "dead", 0, -1)
else
  ids = {unpack(ARGV, 3)}
end
local dead = {}
if #ids > 0 then
  local scores = sliced("ZMSCORE", base .. "dead", ids)
  for i = 1, #ids do dead[i] = scores[i] ~= false end
end
local found, busy = {}, 0
for i = 1, #ids do
  if dead[i] then
    local claim = tonumber(redis.call("ZSCORE", base .. "deadhook", ids[i]))
    if claim and claim > now then busy = busy + 1 else found[#found + 1] = ids[i] end
  end
end
if #found == 0 then return {0, busy} end
local records = {}
for i = 1, #found do
  records[#records + 1] = found[i]; records[#records + 1] = lease_value(0, "", "", "")
end
bulk("ZREM", base .. "dead", found)
bulk("ZREM", base .. "deadhook", found)
bulk("HSET", base .. "lease", records)
push_waiting(found, false)
redis.call("HINCRBY", base .. "stats", "requeued", #found)
wake()
return {#found, busy}
