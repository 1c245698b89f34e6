-- Leases up to N ready jobs to a worker, promoting due delayed jobs first.
-- KEYS[1]: the queue's base key
-- ARGV[1]: now (ms); ARGV[2]: N; ARGV[3]: lease (ms); ARGV[4]: worker id (lease token prefix)
-- Returns: { next_delayed_due_ms or -1, ready_left, then per job 5 values:
--   id, spec, attempts (this one included), token, retry run-at (ms) or "" }
local now = tonumber(ARGV[1])
local want = tonumber(ARGV[2])
local lease = tonumber(ARGV[3])
local worker = ARGV[4]

local due = redis.call("ZRANGEBYSCORE", base .. "delayed", "-inf", now, "LIMIT", 0, 1000)
if #due > 0 then
  bulk("ZREM", base .. "delayed", due)
  local sc = hmget("scores", due)
  local args = {}
  for i = 1, #due do args[#args + 1] = sc[i]; args[#args + 1] = due[i] end
  bulk("ZADD", base .. "ready", args)
end

local out = {-1, 0}
if redis.call("EXISTS", base .. "paused") == 0 then
  local popped = redis.call("ZPOPMIN", base .. "ready", want)
  local ids = {}
  for i = 1, #popped, 2 do ids[#ids + 1] = popped[i] end
  if #ids > 0 then
    local att = hmget("attempts", ids)
    local specs = hmget("data", ids)
    local runat = hmget("runat", ids)
    local a_args, t_args, s_args, z_args = {}, {}, {}, {}
    for i = 1, #ids do
      local a = (tonumber(att[i]) or 0) + 1
      local token = worker .. ":" .. a
      a_args[#a_args + 1] = ids[i]; a_args[#a_args + 1] = a
      t_args[#t_args + 1] = ids[i]; t_args[#t_args + 1] = token
      s_args[#s_args + 1] = ids[i]; s_args[#s_args + 1] = now
      z_args[#z_args + 1] = now + lease; z_args[#z_args + 1] = ids[i]
      local n = #out
      out[n + 1] = ids[i]
      out[n + 2] = specs[i] or "[]"
      out[n + 3] = a
      out[n + 4] = token
      out[n + 5] = runat[i] or ""
    end
    bulk("HSET", base .. "attempts", a_args)
    bulk("HSET", base .. "tokens", t_args)
    bulk("HSET", base .. "started", s_args)
    bulk("ZADD", base .. "active", z_args)
  end
end
local nxt = redis.call("ZRANGE", base .. "delayed", 0, 0, "WITHSCORES")
if #nxt > 0 then out[1] = tonumber(nxt[2]) end
out[2] = redis.call("ZCARD", base .. "ready")
if out[2] > 0 and #out > 2 then wake() end
return out
