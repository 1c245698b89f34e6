-- Heartbeat: extends the leases a worker still holds.
-- KEYS[1]: the queue's base key
-- ARGV[1]: now (ms); ARGV[2]: lease (ms); then pairs: id, token
-- Returns: the ids whose lease was lost (recovered by someone else, or finished).
local deadline = tonumber(ARGV[1]) + tonumber(ARGV[2])
local ids, toks = {}, {}
for i = 3, #ARGV, 2 do
  ids[#ids + 1] = ARGV[i]
  toks[#toks + 1] = ARGV[i + 1]
end
local ls = hmget("lease", ids)
local active = members("active", ids)
local keep, lost = {}, {}
for i = 1, #ids do
  local _, held = parse_lease(ls[i])
  if held == toks[i] and active[i] then
    keep[#keep + 1] = deadline; keep[#keep + 1] = ids[i]
  else
    lost[#lost + 1] = ids[i]
  end
end
if #keep > 0 then sliced("ZADD", base .. "active", keep, "XX") end
return lost
