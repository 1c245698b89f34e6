-- Heartbeat: extends the leases a worker still holds.
-- KEYS[1]: the queue's base key
-- ARGV[1]: now (ms); ARGV[2]: lease (ms); then pairs: id, token
-- Returns: the ids whose lease was lost (recovered by someone else, or finished).
local base = KEYS[1]
local deadline = tonumber(ARGV[1]) + tonumber(ARGV[2])
local lost = {}
for i = 3, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  if redis.call("HGET", base .. "j:" .. id, "token") == token
      and redis.call("ZSCORE", base .. "active", id) then
    redis.call("ZADD", base .. "active", "XX", deadline, id)
  else
    lost[#lost + 1] = id
  end
end
return lost
