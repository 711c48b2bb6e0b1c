-- A user's first (ARGV[2] = '+') or last ('-') presence on one node, counted over nodes:
-- members of a presence channel, or signed-in users of an app.
-- KEYS[1] counter hash (user -> nodes where present), KEYS[2] this node's hash (user -> 1),
-- KEYS[3] (optional) info hash (user -> user_info JSON)
-- ARGV[1] user id, ARGV[2] '+' or '-', ARGV[3] user_info JSON ('' for none)
-- Returns 1 when the user became present in, or left, the whole cluster; 0 otherwise.
-- Repeating a change is harmless: the node hash says whether this node already counted it.
if ARGV[2] == '+' then
  if redis.call('HSETNX', KEYS[2], ARGV[1], 1) == 0 then
    return 0
  end
  local n = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
  if KEYS[3] and ARGV[3] ~= '' and n == 1 then
    redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
  end
  if n == 1 then return 1 end
  return 0
end
if redis.call('HDEL', KEYS[2], ARGV[1]) == 0 then
  return 0
end
if redis.call('HINCRBY', KEYS[1], ARGV[1], -1) <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  if KEYS[3] then redis.call('HDEL', KEYS[3], ARGV[1]) end
  return 1
end
return 0
