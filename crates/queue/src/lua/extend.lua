-- Heartbeat: pushes a worker's lease deadline forward, and gives each held job on its first
-- attempt the lease record fetch left out (see parse_lease), so a job that runs for a while
-- shows when it started and who holds it. Jobs that finish before a heartbeat never need one.
-- KEYS[1]: the queue's base key
-- ARGV[1]: the new deadline (ms); ARGV[2]: the lease id; ARGV[3..]: pairs of id and when its
-- attempt started (ms)
-- Returns: the ids whose lease was lost (the lease id was evicted, or the job is no longer held
-- under it).
local holder = ARGV[2]
local ids, started = {}, {}
for i = 3, #ARGV, 2 do
  ids[#ids + 1] = ARGV[i]
  started[#started + 1] = ARGV[i + 1]
end
if redis.call("ZSCORE", base .. "evicted", holder) then return ids end
redis.call("ZADD", base .. "workers", ARGV[1], holder)
local held = in_set(base .. "active:" .. holder, ids)
local lost = {}
for i = 1, #ids do
  if held[i] then
    redis.call("HSETNX", base .. "lease", ids[i], lease_value(1, started[i], "", holder))
  else
    lost[#lost + 1] = ids[i]
  end
end
return lost
