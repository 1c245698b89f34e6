-- Shared helpers, prepended to every script (see queue.rs).
-- Job data lives in per-queue hashes keyed by job id, so a batch of N jobs costs a few
-- variadic commands rather than N commands: data (the job spec, JSON array), scores (place in
-- line), attempts, tokens (current lease), started, runat (retry time), results, errors,
-- progress, dedupof (id -> dedup key). The state is the sorted set that holds the id.
-- deadhook: dead jobs whose dead-letter hook has not yet run; score = when a worker may claim it.
local base = KEYS[1]

-- redis.call(cmd, key, [flag,] ...args) with a long argument list, in slices (Lua's unpack has a
-- stack limit); the replies of the slices, concatenated. Slices hold 4 000 arguments, an even
-- number, so pairs stay together.
local function sliced(cmd, key, args, flag)
  local out = {}
  local i = 1
  while i <= #args do
    local j = math.min(i + 3999, #args)
    local part
    if flag then
      part = redis.call(cmd, key, flag, unpack(args, i, j))
    else
      part = redis.call(cmd, key, unpack(args, i, j))
    end
    if type(part) == "table" then
      for k = 1, #part do out[#out + 1] = part[k] end
    end
    i = j + 1
  end
  return out
end

local function bulk(cmd, key, args)
  sliced(cmd, key, args)
end

-- Values for each id, from hash `name` (false where absent).
local function hmget(name, ids)
  return sliced("HMGET", base .. name, ids)
end

-- Whether each id is in sorted set `name`.
local function members(name, ids)
  local scores = sliced("ZMSCORE", base .. name, ids)
  local out = {}
  for k = 1, #scores do out[k] = scores[k] ~= false end
  return out
end

local function wake()
  redis.call("LPUSH", base .. "wake", "1")
  redis.call("LTRIM", base .. "wake", 0, 0)
end

-- Appends an attempt's error to each job's history (the last 25 are kept).
local function record_errors(ids, attempts, texts, now)
  if #ids == 0 then return end
  local old = hmget("errors", ids)
  local args = {}
  for i = 1, #ids do
    local list = {}
    if old[i] then list = cjson.decode(old[i]) end
    list[#list + 1] = {attempt = tonumber(attempts[i]) or 0, at = now, error = texts[i]}
    while #list > 25 do table.remove(list, 1) end
    args[#args + 1] = ids[i]
    args[#args + 1] = cjson.encode(list)
  end
  bulk("HSET", base .. "errors", args)
end

-- Frees the dedup keys of finished jobs (when they still point at them).
local function release_dedup(ids)
  if #ids == 0 then return end
  local keys = hmget("dedupof", ids)
  local found = {}
  for i = 1, #ids do
    if keys[i] and redis.call("HGET", base .. "dedup", keys[i]) == ids[i] then
      redis.call("HDEL", base .. "dedup", keys[i])
    end
    if keys[i] then found[#found + 1] = ids[i] end
  end
  if #found > 0 then bulk("HDEL", base .. "dedupof", found) end
end

-- Deletes everything stored for these jobs.
local function forget(ids)
  if #ids == 0 then return end
  bulk("HDEL", base .. "data", ids)
  bulk("HDEL", base .. "lease", ids)
  -- The rest exist for some jobs only; skip an empty hash without touching each id.
  for _, h in ipairs({"results", "errors", "progress", "dedupof"}) do
    if redis.call("HLEN", base .. h) > 0 then bulk("HDEL", base .. h, ids) end
  end
  if redis.call("ZCARD", base .. "deadhook") > 0 then bulk("ZREM", base .. "deadhook", ids) end
end

-- Parses a lease field: attempts, token, started, run_at, score (strings; "" when unset).
local function parse_lease(v)
  if not v then return 0, "", "", "", "" end
  local a, t, s, r, sc = string.match(v, "^(%d*)|([^|]*)|(%d*)|(%d*)|([%d.e+]*)$")
  return tonumber(a) or 0, t or "", s or "", r or "", sc or ""
end

local function lease_value(a, token, started, run_at, score)
  return a .. "|" .. token .. "|" .. started .. "|" .. run_at .. "|" .. score
end

-- A place in `ready` for a job that has none yet: its priority, then now.
local function new_score(id)
  local spec = redis.call("HGET", base .. "data", id)
  local prio = 0
  if spec then prio = tonumber(cjson.decode(spec)[3]) or 0 end
  return (1023 - prio) * 8796093022208 + redis.call("INCR", base .. "seq")
end
