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
local held = hmget("tokens", ids)
local active = members("active", ids)
local att = hmget("attempts", ids)
local sc = hmget("scores", ids)
local back, gone, a_args = {}, {}, {}
for i = 1, #ids do
  if held[i] == toks[i] and active[i] then
    gone[#gone + 1] = ids[i]
    back[#back + 1] = sc[i]; back[#back + 1] = ids[i]
    a_args[#a_args + 1] = ids[i]; a_args[#a_args + 1] = math.max((tonumber(att[i]) or 1) - 1, 0)
  end
end
if #gone > 0 then
  bulk("ZREM", base .. "active", gone)
  bulk("HDEL", base .. "tokens", gone)
  bulk("HSET", base .. "attempts", a_args)
  bulk("ZADD", base .. "ready", back)
  wake()
end
return #gone
