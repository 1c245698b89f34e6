-- Cancels waiting and delayed jobs: each leaves its line and everything stored for it is
-- deleted, its dedup key freed. Active, finished and dead jobs are left as they are (an active
-- job's worker holds it; a dead one is retried or left to retention).
-- Everything is read before anything is written (Redis keeps a failed script's writes).
-- KEYS[1]: the queue's base key; ARGV[1]: the events channel; ARGV[2..]: ids
-- Returns: per id, "cancelled", "missing" (no such job) or the state it was left in.
local ids = {unpack(ARGV, 2)}
if #ids == 0 then return {} end
local specs = hmget("data", ids)
local delayed = sliced("ZMSCORE", base .. "delayed", ids)
local out, gone = {}, {}
-- Decide first.
local plan = {}
for i = 1, #ids do
  if not specs[i] then
    out[i] = "missing"
  elseif delayed[i] then
    plan[i] = "delayed"
  else
    local p = math.floor(tonumber((spec_field(specs[i], 3))) or 0)
    if p < 0 or p > 1023 then p = 0 end
    plan[i] = p
  end
end
for i = 1, #ids do
  local how = plan[i]
  if how == "delayed" then
    redis.call("ZREM", base .. "delayed", ids[i])
    out[i] = "cancelled"
  elseif how ~= nil then
    local key = base .. "wait:" .. how
    local removed = redis.call("LREM", key, 1, ids[i])
    if removed == 0 then removed = redis.call("LREM", key, 1, "~" .. ids[i]) end
    if removed > 0 then
      out[i] = "cancelled"
      if redis.call("LLEN", key) == 0 then redis.call("ZREM", base .. "prios", how) end
    end
  end
  if out[i] == "cancelled" then
    gone[#gone + 1] = ids[i]
  elseif out[i] == nil then
    -- Not in a line: say where it is.
    local _, _, _, holder, fin = parse_lease(redis.call("HGET", base .. "lease", ids[i]))
    if redis.call("ZSCORE", base .. "dead", ids[i]) then
      out[i] = "dead"
    elseif fin ~= "" then
      out[i] = "completed"
    else
      out[i] = "active"
    end
  end
end
if #gone > 0 then
  release_dedup(gone)
  forget(gone)
  redis.call("HINCRBY", base .. "stats", "cancelled", #gone)
  redis.call("PUBLISH", ARGV[1], cjson.encode({event = "cancelled", ids = gone}))
end
return out
