-- Checks (and with "repair", mends) the accounting of the given jobs, atomically: every job
-- whose spec exists is in exactly one state (waiting, delayed, active, completed, dead), and no
-- state lists a job without a spec. `queue::audit` finds the suspects with a scan; this script
-- decides on each one with nothing moving meanwhile.
-- KEYS[1]: the queue's base key
-- ARGV[1]: "check" | "repair"; ARGV[2]: S, the number of lease ids holding an active set
--   without an entry in `workers`; ARGV[3 .. 2+S]: those lease ids; then the job ids.
-- Returns: per job id, { verdict, states } where verdict is "ok" (the scan saw it move),
--   "orphan" (spec, no state), "ghost" (state, no spec) or "duplicate" (several states),
--   and states the states it was found in ("a,b"); then the lease ids confirmed stray.
-- Repairs: an orphan goes back in line (or to `done` if its record says it completed); a
--   ghost leaves every state; a duplicate keeps its furthest state (dead, completed, active,
--   delayed, waiting, in that order); a stray lease gets a lapsed deadline, so the recoverer
--   takes its jobs back.
local repair = ARGV[1] == "repair"
local nstray = tonumber(ARGV[2])
local strays = {}
for i = 1, nstray do strays[i] = ARGV[2 + i] end
local ids = {unpack(ARGV, 3 + nstray)}
local holders = redis.call("ZRANGE", base .. "workers", 0, -1)
for _, h in ipairs(strays) do holders[#holders + 1] = h end
local prios = redis.call("ZRANGE", base .. "prios", 0, -1)

-- Where `id` is: a list of { state, detail } (detail: the list key or lease id).
local function where(id)
  local found = {}
  if redis.call("ZSCORE", base .. "dead", id) then found[#found + 1] = {"dead"} end
  if redis.call("LPOS", base .. "done", id) then found[#found + 1] = {"completed"} end
  for _, h in ipairs(holders) do
    if redis.call("SISMEMBER", base .. "active:" .. h, id) == 1 then
      found[#found + 1] = {"active", h}
    end
  end
  if redis.call("ZSCORE", base .. "delayed", id) then found[#found + 1] = {"delayed"} end
  for _, p in ipairs(prios) do
    local key = base .. "wait:" .. p
    if redis.call("LPOS", key, id) or redis.call("LPOS", key, "~" .. id) then
      found[#found + 1] = {"waiting", key}
    end
  end
  return found
end

local function leave(id, place)
  local state = place[1]
  if state == "dead" then
    redis.call("ZREM", base .. "dead", id)
    redis.call("ZREM", base .. "deadhook", id)
  elseif state == "completed" then
    redis.call("LREM", base .. "done", 0, id)
  elseif state == "active" then
    redis.call("SREM", base .. "active:" .. place[2], id)
  elseif state == "delayed" then
    redis.call("ZREM", base .. "delayed", id)
  else
    redis.call("LREM", place[2], 0, id)
    redis.call("LREM", place[2], 0, "~" .. id)
    if redis.call("LLEN", place[2]) == 0 then
      redis.call("ZREM", base .. "prios", string.sub(place[2], #base + 6))
    end
  end
end

local rank = {dead = 5, completed = 4, active = 3, delayed = 2, waiting = 1}
local out = {}
for _, id in ipairs(ids) do
  local spec = redis.call("HGET", base .. "data", id)
  local found = where(id)
  local names = {}
  for k = 1, #found do names[k] = found[k][1] end
  local verdict = "ok"
  if not spec and #found > 0 then
    verdict = "ghost"
    if repair then
      for k = 1, #found do leave(id, found[k]) end
      forget({id})
    end
  elseif spec and #found == 0 then
    verdict = "orphan"
    if repair then
      local record = redis.call("HGET", base .. "lease", id)
      if completed_record(record) then
        redis.call("RPUSH", base .. "done", id)
      else
        if not record then
          redis.call("HSET", base .. "lease", id, lease_value(0, "", "", ""))
        end
        push_waiting({id}, false)
        wake()
      end
    end
  elseif #found > 1 then
    verdict = "duplicate"
    if repair then
      local best = 1
      for k = 2, #found do
        if rank[found[k][1]] > rank[found[best][1]] then best = k end
      end
      for k = 1, #found do
        if k ~= best then leave(id, found[k]) end
      end
    end
  end
  out[#out + 1] = {verdict, table.concat(names, ",")}
end
local still = {}
for _, h in ipairs(strays) do
  if not redis.call("ZSCORE", base .. "workers", h) and redis.call("EXISTS", base .. "active:" .. h) == 1 then
    still[#still + 1] = h
    if repair then redis.call("ZADD", base .. "workers", 0, h) end
  end
end
out[#out + 1] = still
return out
