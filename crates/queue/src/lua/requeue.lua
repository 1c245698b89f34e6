-- Requeues dead-lettered jobs: attempts start over, the error history is kept.
-- KEYS[1]: the queue's base key
-- ARGV[1]: "all" or "ids"; ARGV[2..]: ids (for "ids")
-- Returns: how many were requeued.
local ids
if ARGV[1] == "all" then
  ids = redis.call("ZRANGE", base .. "dead", 0, -1)
else
  ids = {}
  for i = 2, #ARGV do ids[#ids + 1] = ARGV[i] end
end
local dead = members("dead", ids)
local found = {}
for i = 1, #ids do if dead[i] then found[#found + 1] = ids[i] end end
if #found == 0 then return 0 end
local back, leases = {}, {}
for i = 1, #found do
  local score = new_score(found[i])
  back[#back + 1] = score; back[#back + 1] = found[i]
  leases[#leases + 1] = found[i]; leases[#leases + 1] = lease_value(0, "", "", "", score)
end
bulk("ZREM", base .. "dead", found)
bulk("HSET", base .. "lease", leases)
bulk("ZADD", base .. "ready", back)
redis.call("HINCRBY", base .. "stats", "requeued", #found)
wake()
return #found
