-- Converts completed jobs stored by builds before `done` existed (a sorted set `completed`,
-- score = finish time) to the current layout: the finish time goes into the lease record and
-- the id to `done`. Newest first, each batch pushed onto the head of `done`, so the list stays in
-- completion order ahead of anything completed since.
-- KEYS[1]: the queue's base key; ARGV[1]: at most this many per call
-- Returns: { converted by this call, left to convert }
local key = base .. "completed"
if redis.call("TYPE", key).ok ~= "zset" then return {0, 0} end
local batch = redis.call("ZREVRANGE", key, 0, tonumber(ARGV[1]) - 1, "WITHSCORES")
local ids, finished = {}, {}
for i = 1, #batch, 2 do
  ids[#ids + 1] = batch[i]
  finished[#finished + 1] = batch[i + 1]
end
local ls = hmget("lease", ids)
local records = {}
for i = 1, #ids do
  local a, started, run_at, holder = parse_held(ls[i])
  records[#records + 1] = ids[i]
  records[#records + 1] = lease_value(a, started, run_at, holder) .. "|" .. finished[i]
end
bulk("HSET", base .. "lease", records)
bulk("LPUSH", base .. "done", ids)
bulk("ZREM", key, ids)
return {#ids, redis.call("ZCARD", key)}
