-- Heartbeat: pushes a worker's lease deadline forward.
-- KEYS[1]: the queue's base key
-- ARGV[1]: the new deadline (ms); ARGV[2]: the lease id; ARGV[3..]: the ids the worker holds
-- Returns: the ids whose lease was lost (the lease id was evicted, or the job is no longer held
-- under it).
local holder = ARGV[2]
local ids = {unpack(ARGV, 3)}
if redis.call("ZSCORE", base .. "evicted", holder) then return ids end
redis.call("ZADD", base .. "workers", ARGV[1], holder)
local held = in_set(base .. "active:" .. holder, ids)
local lost = {}
for i = 1, #ids do
  if not held[i] then lost[#lost + 1] = ids[i] end
end
return lost
