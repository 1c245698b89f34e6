-- Shared helpers, prepended to every script (see queue.rs for the layout of the keys).
--
-- Cost model, measured on the development machine: Redis spends ~0.1-0.3 us per element on
-- lists and sets, ~0.4-1.3 us on large hashes, ~2 us on sorted sets, and the Lua layer adds
-- ~1 us for every string it builds or number it formats. So the hot scripts (enqueue, fetch,
-- finish) take their arguments laid out by the client in the order the variadic commands need
-- them and pass `unpack(ARGV, i, j)` straight through; per-job Lua loops are for rare paths.
local base = KEYS[1]

-- redis.call(cmd, key, [flag,] ...args) with a long argument list, in slices (Lua's unpack has a
-- stack limit); the replies of the slices, concatenated. Slices hold 4 000 arguments, an even
-- number, so pairs stay together.
local function sliced(cmd, key, args, flag)
  if #args <= 4000 then
    local part
    if flag then part = redis.call(cmd, key, flag, unpack(args)) else part = redis.call(cmd, key, unpack(args)) end
    if type(part) == "table" then return part end
    return {}
  end
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
  if #args > 0 then sliced(cmd, key, args) end
end

-- Values for each id, from hash `name` (false where absent).
local function hmget(name, ids)
  if #ids == 0 then return {} end
  return sliced("HMGET", base .. name, ids)
end

local function wake()
  redis.call("LPUSH", base .. "wake", "1")
  redis.call("LTRIM", base .. "wake", 0, 0)
end

-- A job's lease record: "attempts|started|run_at|holder[|finished]" (strings; "" when unset).
-- `holder` is the lease id of the worker that ran the last attempt, `run_at` when the current
-- attempt became runnable (a delay or a retry), `started` when the last attempt began,
-- `finished` when the job completed (completed jobs alone have it).
-- A job on its first attempt has no record until it finishes (the worker sends the whole
-- record then) or its holder's heartbeat writes one; every other change of hands (recovery,
-- release, retry, death) writes one. So a job without a record has never left its first
-- holder.
local function parse_lease(v)
  if not v then return 0, "", "", "", "" end
  local a, s, r, h, f = string.match(v, "^(%d*)|(%d*)|(%d*)|([^|]*)|?(%d*)$")
  return tonumber(a) or 0, s or "", r or "", h or "", f or ""
end

-- parse_lease for a job that is (or was) held by a worker: one without a record is on its
-- first attempt, never handed on (see above), so its attempts are 1, not 0.
local function parse_held(v)
  local a, s, r, h, f = parse_lease(v)
  if not v then a = 1 end
  return a, s, r, h, f
end

-- Whether the lease record says the job completed.
local function completed_record(v)
  local _, _, _, _, f = parse_lease(v)
  return f ~= ""
end

local function lease_value(a, started, run_at, holder)
  return a .. "|" .. started .. "|" .. run_at .. "|" .. holder
end

-- Field k of a stored spec (a JSON array), and whether the spec could be read. Decoding
-- must not raise: Redis does not roll back what a script wrote before an error, so a script that
-- failed half-way would leave jobs in no state at all.
local function spec_field(spec, k)
  if not spec then return nil, true end
  local ok, v = pcall(cjson.decode, spec)
  -- Every spec this build writes, or has written, is an array of at least five fields.
  if not ok or type(v) ~= "table" or #v < 5 then return nil, false end
  return v[k], true
end

-- Puts jobs that have a lease record (an attempt before, a delay, a requeue) in line: at the
-- back of their priority's list, or at its front (a job taken back from a worker had reached
-- the front already). Waiting jobs live in one list per priority, `wait:<p>`; `prios` holds the
-- priorities that have waiting jobs, highest first. These jobs are listed as "~<id>", so that
-- fetch reads lease records only for them, not for every first attempt.
local function push_waiting(ids, front)
  if #ids == 0 then return end
  local specs = hmget("data", ids)
  local groups, order = {}, {}
  for i = 1, #ids do
    -- An unreadable spec waits at priority 0: its attempt then fails on it (the worker cannot
    -- read it either) and it is dead-lettered with the reason.
    local p = math.floor(tonumber((spec_field(specs[i], 3))) or 0)
    if p < 0 or p > 1023 then p = 0 end
    if not groups[p] then groups[p] = {}; order[#order + 1] = p end
    local g = groups[p]
    g[#g + 1] = "~" .. ids[i]
  end
  for _, p in ipairs(order) do
    local g = groups[p]
    if front then
      -- LPUSH a b c leaves c b a at the head: push in reverse to keep their order.
      local rev = {}
      for i = #g, 1, -1 do rev[#rev + 1] = g[i] end
      bulk("LPUSH", base .. "wait:" .. p, rev)
    else
      bulk("RPUSH", base .. "wait:" .. p, g)
    end
    redis.call("ZADD", base .. "prios", 1023 - p, p)
  end
end

-- How many jobs wait (one LLEN per priority in use, not per job).
local function waiting_count()
  local n = 0
  for _, p in ipairs(redis.call("ZRANGE", base .. "prios", 0, -1)) do
    n = n + redis.call("LLEN", base .. "wait:" .. p)
  end
  return n
end

-- Whether each id is in set `key` (a worker's active set).
local function in_set(key, ids)
  if #ids == 0 then return {} end
  local m = sliced("SMISMEMBER", key, ids)
  local out = {}
  for k = 1, #ids do out[k] = m[k] == 1 end
  return out
end

-- Appends an attempt's error to each job's history (the last 25 are kept).
local function record_errors(ids, attempts, texts, now)
  if #ids == 0 then return end
  local old = hmget("errors", ids)
  local args = {}
  for i = 1, #ids do
    local list = {}
    if old[i] then
      local ok, v = pcall(cjson.decode, old[i])
      if ok and type(v) == "table" then
        list = v
      else
        list = {{attempt = 0, at = now, error = "earlier error history unreadable"}}
      end
    end
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
  bulk("HDEL", base .. "dedupof", found)
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

-- Moves jobs out of attempts to the dead-letter set (their hook pending), with events.
local function to_dead(ids, now, channel)
  if #ids == 0 then return end
  local z = {}
  for i = 1, #ids do z[#z + 1] = now; z[#z + 1] = ids[i] end
  bulk("ZADD", base .. "dead", z)
  bulk("ZADD", base .. "deadhook", z)
  redis.call("HINCRBY", base .. "stats", "dead", #ids)
  redis.call("PUBLISH", channel, cjson.encode({event = "failed", ids = ids}))
end
