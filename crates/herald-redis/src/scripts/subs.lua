-- One node's subscription count of a channel.
-- KEYS[1] the channel's subs hash (node -> subscriptions on that node)
-- ARGV[1] node id, ARGV[2] its subscriptions now
-- Returns {cluster total before, cluster total after}.
local before = 0
for _, v in ipairs(redis.call('HVALS', KEYS[1])) do
  before = before + tonumber(v)
end
local old = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
local now = tonumber(ARGV[2])
if now > 0 then
  redis.call('HSET', KEYS[1], ARGV[1], now)
else
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return {before, before - old + now}
