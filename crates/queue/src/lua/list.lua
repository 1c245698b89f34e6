-- Up to N ids in a state: waiting in the order they will run, active by worker, the others
-- oldest first.
-- KEYS[1]: the queue's base key; ARGV[1]: state; ARGV[2]: N
local state, n = ARGV[1], tonumber(ARGV[2])
local out = {}
if n <= 0 then return out end
if state == "waiting" then
  for _, p in ipairs(redis.call("ZRANGE", base .. "prios", 0, -1)) do
    for _, id in ipairs(redis.call("LRANGE", base .. "wait:" .. p, 0, n - #out - 1)) do
      if string.byte(id, 1) == 126 then id = string.sub(id, 2) end -- "~<id>": see push_waiting
      out[#out + 1] = id
    end
    if #out >= n then break end
  end
elseif state == "active" then
  for _, holder in ipairs(redis.call("ZRANGE", base .. "workers", 0, -1)) do
    for _, id in ipairs(redis.call("SRANDMEMBER", base .. "active:" .. holder, n - #out)) do out[#out + 1] = id end
    if #out >= n then break end
  end
elseif state == "completed" then
  out = redis.call("LRANGE", base .. "done", 0, n - 1)
else
  out = redis.call("ZRANGE", base .. state, 0, n - 1)
end
return out
