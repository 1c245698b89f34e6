-- Updates a user's GEO position and last-active time, unless a later trip already did; and
-- forgets users inactive for longer than the window (a bounded amount per call).
-- KEYS: geo set, active zset (one hash slot). ARGV: user, lng, lat, at (ms), window (ms).
local at = tonumber(ARGV[4])
local cur = tonumber(redis.call("ZSCORE", KEYS[2], ARGV[1]))
if not cur or cur <= at then
  redis.call("GEOADD", KEYS[1], ARGV[2], ARGV[3], ARGV[1])
  redis.call("ZADD", KEYS[2], at, ARGV[1])
end
local old = redis.call("ZRANGEBYSCORE", KEYS[2], "-inf", "(" .. (at - tonumber(ARGV[5])), "LIMIT", 0, 100)
if #old > 0 then
  redis.call("ZREM", KEYS[2], unpack(old))
  redis.call("ZREM", KEYS[1], unpack(old))
end
return 1
