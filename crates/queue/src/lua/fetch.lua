-- Leases up to N ready jobs to a worker, promoting due delayed jobs first.
-- KEYS[1]: the queue's base key
-- ARGV[1]: now (ms); ARGV[2]: N; ARGV[3]: lease (ms); ARGV[4]: worker id (lease token prefix)
-- Returns: { next_delayed_due_ms or -1, ready_left, then per job 5 values:
--   id, spec, attempts (this one included), token, run-at (ms) or "" }
local now = tonumber(ARGV[1])
local want = tonumber(ARGV[2])
local lease = tonumber(ARGV[3])
local worker = ARGV[4]

local due = redis.call("ZRANGEBYSCORE", base .. "delayed", "-inf", now, "LIMIT", 0, 1000)
if #due > 0 then
  bulk("ZREM", base .. "delayed", due)
  local ls = hmget("lease", due)
  local args = {}
  for i = 1, #due do
    local _, _, _, _, sc = parse_lease(ls[i])
    if sc == "" then sc = new_score(due[i]) end
    args[#args + 1] = sc; args[#args + 1] = due[i]
  end
  bulk("ZADD", base .. "ready", args)
end

local out = {-1, 0}
if redis.call("EXISTS", base .. "paused") == 0 then
  local popped = redis.call("ZPOPMIN", base .. "ready", want)
  local ids, scores = {}, {}
  for i = 1, #popped, 2 do ids[#ids + 1] = popped[i]; scores[#scores + 1] = popped[i + 1] end
  if #ids > 0 then
    local ls = hmget("lease", ids)
    local specs = hmget("data", ids)
    local l_args, z_args = {}, {}
    for i = 1, #ids do
      local a, _, _, run_at = parse_lease(ls[i])
      a = a + 1
      local token = worker .. ":" .. a
      l_args[#l_args + 1] = ids[i]
      l_args[#l_args + 1] = lease_value(a, token, now, run_at, scores[i])
      z_args[#z_args + 1] = now + lease; z_args[#z_args + 1] = ids[i]
      local n = #out
      out[n + 1] = ids[i]
      out[n + 2] = specs[i] or "[]"
      out[n + 3] = a
      out[n + 4] = token
      out[n + 5] = run_at
    end
    bulk("HSET", base .. "lease", l_args)
    bulk("ZADD", base .. "active", z_args)
  end
end
local nxt = redis.call("ZRANGE", base .. "delayed", 0, 0, "WITHSCORES")
if #nxt > 0 then out[1] = tonumber(nxt[2]) end
out[2] = redis.call("ZCARD", base .. "ready")
if out[2] > 0 and #out > 2 then wake() end
return out
