-- A page of ids in a state: N ids after skipping OFFSET, in ORDER. "oldest": waiting jobs in the
-- order they will run, the others oldest first; "newest": the reverse. Active jobs are listed by
-- worker either way (their number is bounded by the workers' concurrency). Work is
-- O(priorities in use + OFFSET within one list + N), never a scan of the state.
-- KEYS[1]: the queue's base key; ARGV[1]: state; ARGV[2]: N; ARGV[3]: OFFSET; ARGV[4]: ORDER
local state, n = ARGV[1], tonumber(ARGV[2])
local offset = tonumber(ARGV[3]) or 0
local newest = ARGV[4] == "newest"
local out = {}
if n <= 0 then return out end

-- Appends up to `n - #out` items of list `key` after skipping `skip` (from its tail when
-- `newest`); returns what is left to skip.
local function from_list(key, skip)
  local len = redis.call("LLEN", key)
  if skip >= len then return skip - len end
  local want = n - #out
  local part
  if newest then
    part = redis.call("LRANGE", key, -(skip + want), -(skip + 1))
    for i = #part, 1, -1 do out[#out + 1] = part[i] end
  else
    part = redis.call("LRANGE", key, skip, skip + want - 1)
    for i = 1, #part do out[#out + 1] = part[i] end
  end
  return 0
end

if state == "waiting" then
  local prios = redis.call(newest and "ZREVRANGE" or "ZRANGE", base .. "prios", 0, -1)
  local skip = offset
  for _, p in ipairs(prios) do
    skip = from_list(base .. "wait:" .. p, skip)
    if #out >= n then break end
  end
  for i = 1, #out do
    if string.byte(out[i], 1) == 126 then out[i] = string.sub(out[i], 2) end -- "~<id>": see push_waiting
  end
elseif state == "active" then
  local all = {}
  for _, holder in ipairs(redis.call("ZRANGE", base .. "workers", 0, -1)) do
    local ids = redis.call("SMEMBERS", base .. "active:" .. holder)
    table.sort(ids)
    for _, id in ipairs(ids) do all[#all + 1] = id end
  end
  for i = offset + 1, math.min(#all, offset + n) do out[#out + 1] = all[i] end
elseif state == "completed" then
  from_list(base .. "done", offset)
else
  out = redis.call(newest and "ZREVRANGE" or "ZRANGE", base .. state, offset, offset + n - 1)
end
return out
