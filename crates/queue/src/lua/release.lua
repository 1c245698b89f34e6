-- Graceful shutdown: returns leases of jobs that did not finish in the grace period. The
-- interrupted attempt is not counted; the job goes back to the front of its line.
-- KEYS[1]: the queue's base key
-- ARGV[1]: the lease id; ARGV[2..]: ids
-- Returns: how many were returned.
local key = base .. "active:" .. ARGV[1]
local ids = {unpack(ARGV, 2)}
local held = in_set(key, ids)
local gone = {}
for i = 1, #ids do
  if held[i] then gone[#gone + 1] = ids[i] end
end
if #gone > 0 then
  table.sort(gone) -- enqueue order (see recover.lua)
  local ls = hmget("lease", gone)
  local records = {}
  for i = 1, #gone do
    local a, started, run_at = parse_held(ls[i])
    records[#records + 1] = gone[i]; records[#records + 1] = lease_value(math.max(a - 1, 0), started, run_at, "")
  end
  bulk("SREM", key, gone)
  bulk("HSET", base .. "lease", records)
  push_waiting(gone, true)
  wake()
end
return #gone
