-- Removes one node's whole share of a channel (or of an app's signed-in users).
-- KEYS[1] counter hash (user -> nodes), KEYS[2] the node's hash (user -> 1),
-- KEYS[3] (optional) info hash, KEYS[4] (optional) the channel's subs hash
-- ARGV[1] node id
-- Returns {total before, total after, users that left the cluster}. What it reaps it deletes,
-- so a second run (another reaper, a retry) finds nothing and reports nothing.
local before, after = 0, 0
if KEYS[4] then
  for _, v in ipairs(redis.call('HVALS', KEYS[4])) do
    before = before + tonumber(v)
  end
  after = before - tonumber(redis.call('HGET', KEYS[4], ARGV[1]) or '0')
  redis.call('HDEL', KEYS[4], ARGV[1])
end
local removed = {}
for _, u in ipairs(redis.call('HKEYS', KEYS[2])) do
  if redis.call('HINCRBY', KEYS[1], u, -1) <= 0 then
    redis.call('HDEL', KEYS[1], u)
    if KEYS[3] then redis.call('HDEL', KEYS[3], u) end
    removed[#removed + 1] = u
  end
end
redis.call('DEL', KEYS[2])
return {before, after, removed}
