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
local _, _, _, holder, fin = parse_lease(record)
local d = redis.call("ZSCORE", base .. "dead", id)
if d then
  state, finished = "dead", d
elseif fin ~= "" then
  state, finished = "completed", fin
elseif redis.call("ZSCORE", base .. "delayed", id) then
  state = "delayed"
elseif holder ~= "" then
  if redis.call("SISMEMBER", base .. "active:" .. holder, id) == 1 then state = "active" end
elseif not record then
  -- A first attempt has no record until its holder's first heartbeat: ask each worker.
  for _, h in ipairs(redis.call("ZRANGE", base .. "workers", 0, -1)) do
    if redis.call("SISMEMBER", base .. "active:" .. h, id) == 1 then
      state, record = "active", lease_value(1, "", "", h)
      break
    end
  end
end
return {
  spec, record,
  redis.call("HGET", base .. "results", id),
  redis.call("HGET", base .. "errors", id),
  redis.call("HGET", base .. "progress", id),
  state, finished,
}
