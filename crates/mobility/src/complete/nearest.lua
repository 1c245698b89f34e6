-- The nearest stop of a feed's live version to a trip's start and to its end.
-- KEYS: the feed's live pointer. ARGV: key base of its versions (`…{gtfs:feed}:v`), start lng,
-- start lat, end lng, end lat, radius (m). The versions' keys share the pointer's hash tag.
-- Returns {version, {stop, metres} or {}, {stop, metres} or {}}, or false with no live version.
local v = redis.call("GET", KEYS[1])
if not v then return false end
local key = ARGV[1] .. v .. ":stops"
local function nearest(lng, lat)
  return redis.call("GEOSEARCH", key, "FROMLONLAT", lng, lat, "BYRADIUS", ARGV[6], "m",
    "ASC", "COUNT", 1, "WITHDIST")
end
return {v, nearest(ARGV[2], ARGV[3]), nearest(ARGV[4], ARGV[5])}
