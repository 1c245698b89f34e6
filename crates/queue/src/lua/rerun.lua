-- Runs completed jobs again: those whose lease record says they finished at or after `since` go
-- from `done` back to waiting, attempts starting over, their kept result dropped (the error
-- history stays). For after a restore rolled back what they wrote to other stores
-- (docs/backup.md#redis-kept-by-its-append-only-file). It reads the whole `done` list, which
-- retention bounds (keep_completed): a rare operator action, not a hot path.
-- KEYS[1]: the queue's base key
-- ARGV[1]: since (ms)
-- Returns: { run again, left completed }
local since = tonumber(ARGV[1])
local done = redis.call("LRANGE", base .. "done", 0, -1)
local records = hmget("lease", done)
local keep, again, seen = {}, {}, {}
for i = 1, #done do
  local id = done[i]
  local _, _, _, _, finished = parse_lease(records[i])
  if finished ~= "" and tonumber(finished) >= since then
    -- An id listed twice (which `jobs audit` reports) runs once.
    if not seen[id] then
      seen[id] = true
      again[#again + 1] = id
    end
  else
    keep[#keep + 1] = id
  end
end
if #again == 0 then return {0, #keep} end
redis.call("DEL", base .. "done")
bulk("RPUSH", base .. "done", keep)
local leases = {}
for i = 1, #again do
  leases[#leases + 1] = again[i]; leases[#leases + 1] = lease_value(0, "", "", "")
end
bulk("HSET", base .. "lease", leases)
for _, h in ipairs({"results", "progress"}) do
  if redis.call("HLEN", base .. h) > 0 then bulk("HDEL", base .. h, again) end
end
push_waiting(again, false)
redis.call("HINCRBY", base .. "stats", "rerun", #again)
wake()
return {#again, #keep}
