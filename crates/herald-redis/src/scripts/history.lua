-- Sequences one publication on a channel with history: the one place where its serial is
-- decided, so every node delivers the channel's publications in one order with one serial.
-- KEYS[1] the app stream, KEYS[2] the channel's position hash (epoch, serial, and per node the
--   last envelope sequence number taken), KEYS[3] the channel's history stream (entry id
--   "{serial}-0", fields e = envelope, t = Redis time in ms)
-- ARGV[1] the envelope without its position, ARGV[2] an epoch to use when the channel has none,
-- ARGV[3] max_messages, ARGV[4] max_age in ms, ARGV[5] node id, ARGV[6] the envelope's sequence
-- number on that node, ARGV[7] the app stream's MAXLEN, ARGV[8] 1-based offset of the envelope's
-- flags byte, ARGV[9] the position flag
-- Returns the serial given, or 0 when this envelope was sequenced already (a batch resent after
-- a lost reply: appending it again would give it a second serial).
local taken = 'n:' .. ARGV[5]
local seq = tonumber(ARGV[6])
if seq <= tonumber(redis.call('HGET', KEYS[2], taken) or '0') then
  return 0
end
local epoch = redis.call('HGET', KEYS[2], 'epoch')
if not epoch then
  -- No history (new, or expired after max_age idle): a new epoch, and nothing of an old one.
  epoch = ARGV[2]
  redis.call('DEL', KEYS[3])
  redis.call('HSET', KEYS[2], 'epoch', epoch, 'serial', 0)
end
local serial = redis.call('HINCRBY', KEYS[2], 'serial', 1)
redis.call('HSET', KEYS[2], taken, seq)

-- Little-endian bytes of n, as the envelope writes its integers.
local function le(n, width)
  local b = {}
  for i = 1, width do
    b[i] = n % 256
    n = math.floor(n / 256)
  end
  return string.char(unpack(b))
end
local env = ARGV[1]
local at = tonumber(ARGV[8])
env = string.sub(env, 1, at - 1) .. string.char(bit.bor(string.byte(env, at), tonumber(ARGV[9])))
  .. string.sub(env, at + 1) .. le(#epoch, 4) .. epoch .. le(serial, 8)

redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[7], '*', 'e', env)
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('XADD', KEYS[3], 'MAXLEN', ARGV[3], serial .. '-0', 'e', env, 't', string.format('%d', now_ms))
-- An idle channel's history goes with its age limit; a new publication starts a new epoch.
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('PEXPIRE', KEYS[3], ARGV[4])
return serial
