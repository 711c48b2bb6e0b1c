-- Publishes one envelope on one shard of an app: appends it to the shard's stream, swaps the
-- shard's "last id" for the new entry's id, and announces "<previous id> <id> <envelope>" on the
-- shard channel. All three keys share a hash tag, so this runs on the shard's master only.
-- KEYS[1] stream, KEYS[2] last id, KEYS[3] shard channel; ARGV[1] MAXLEN, ARGV[2] envelope.
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'e', ARGV[2])
local prev = redis.call('SET', KEYS[2], id, 'GET')
if not prev then
  prev = '0-0'
end
redis.call('SPUBLISH', KEYS[3], prev .. ' ' .. id .. ' ' .. ARGV[2])
return id
