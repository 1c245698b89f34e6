-- What an operator's overview needs beyond the counts: the id at the head of each priority's
-- line (the oldest waiting job is among them) and each worker lease with its deadline and the
-- number of jobs it holds. O(priorities in use + workers).
-- KEYS[1]: the queue's base key
-- Returns: { {head ids...}, {lease id, deadline, held, ...} }
local heads = {}
for _, p in ipairs(redis.call("ZRANGE", base .. "prios", 0, -1)) do
  local id = redis.call("LINDEX", base .. "wait:" .. p, 0)
  if id then
    if string.byte(id, 1) == 126 then id = string.sub(id, 2) end
    heads[#heads + 1] = id
  end
end
local workers = {}
local w = redis.call("ZRANGE", base .. "workers", 0, -1, "WITHSCORES")
for i = 1, #w, 2 do
  workers[#workers + 1] = w[i]
  workers[#workers + 1] = w[i + 1]
  workers[#workers + 1] = tostring(redis.call("SCARD", base .. "active:" .. w[i]))
end
return {heads, workers}
