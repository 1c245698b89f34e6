-- Graceful shutdown: returns leases of jobs that did not finish in the grace period. The
-- interrupted attempt is not counted; the job keeps its place in line.
-- KEYS[1]: the queue's base key
-- ARGV: pairs of id, token
-- Returns: how many were returned.
local ids, toks = {}, {}
for i = 1, #ARGV, 2 do
  ids[#ids + 1] = ARGV[i]
  toks[#toks + 1] = ARGV[i + 1]
end
local ls = hmget("lease", ids)
local active = members("active", ids)
local back, gone, leases = {}, {}, {}
for i = 1, #ids do
  local a, held, started, run_at, score = parse_lease(ls[i])
  if held == toks[i] and active[i] then
    if score == "" then score = new_score(ids[i]) end
    gone[#gone + 1] = ids[i]
    back[#back + 1] = score; back[#back + 1] = ids[i]
    leases[#leases + 1] = ids[i]; leases[#leases + 1] = lease_value(math.max(a - 1, 0), "", "", run_at, score)
  end
end
if #gone > 0 then
  bulk("ZREM", base .. "active", gone)
  bulk("HSET", base .. "lease", leases)
  bulk("ZADD", base .. "ready", back)
  wake()
end
return #gone
