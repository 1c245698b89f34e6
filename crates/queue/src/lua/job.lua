-- One job's stored parts and state, read atomically.
-- KEYS[1]: the queue's base key; ARGV[1]: the id
-- Returns: { spec, lease record, result, errors, progress, state, finished_ms } (false where
-- absent); state is "waiting" | "delayed" | "active" | "completed" | "dead", or false when the
-- job does not exist.
local id = ARGV[1]
local spec = redis.call("HGET", base .. "data", id)
if not spec then return {false, false, false, false, false, false, false} end
local record = redis.call("HGET", base .. "lease", id)
local state, finished = "waiting", false
local c = redis.call("ZSCORE", base .. "completed", id)
local d = redis.call("ZSCORE", base .. "dead", id)
if c then
  state, finished = "completed", c
elseif d then
  state, finished = "dead", d
elseif redis.call("ZSCORE", base .. "delayed", id) then
  state = "delayed"
else
  local _, _, _, holder = parse_lease(record)
  if holder ~= "" and redis.call("SISMEMBER", base .. "active:" .. holder, id) == 1 then
    state = "active"
  end
end
return {
  spec, record,
  redis.call("HGET", base .. "results", id),
  redis.call("HGET", base .. "errors", id),
  redis.call("HGET", base .. "progress", id),
  state, finished,
}
