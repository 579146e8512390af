"""The Lua scripts that make each of Redis storage's steps atomic.

Each runs inside Redis as one step that no other client's command interleaves with, which
is what keeps ids, names and sessions right with any number of processes.
"""

# One atomic step. KEYS: the sequence, the epoch, the idempotency key's record, then
# (when the post expects what it was decided on) the session, the settings and the rooms,
# then (when it holds a name) the name's key, then one key per rate window, then the logs.
# ARGV: the record's tail, the history kept, the floor, the channel to publish to, the
# idempotency key's lifetime in ms (or ''); '1' if the post expects (then the session's
# name, '1' if it is the host's, the room or '', the number of settings, and for each its
# field, '1' if set and its value); the session holding the name (or '') and how many ms
# more; the number of rate windows, and the count and ms of each.
#
# A repeat of an idempotency key answers the record stored under it, and nothing else
# happens. A session, setting or room that is no longer as the post read it answers
# STALE; a name another session holds, NAMETAKEN; a rate window past its count (each
# counts the post), RATE. Then the next id (never at or below the floor the caller has
# seen, so ids do not go backwards when Redis comes back empty), the record in each log
# it is filed under, the logs trimmed, and, when asked, the record published. Publishing
# inside the step is what makes every process receive events in id order.
# The id travels as the text Redis keeps: Lua's numbers print as 1e+14 from 10^14 on.
APPEND = """
local epoch = redis.call('GET', KEYS[2])
if not epoch then
  return redis.error_reply('NOEPOCH')
end
if ARGV[5] ~= '' then
  local prior = redis.call('GET', KEYS[3])
  if prior then
    return {prior}
  end
end
local k, a = 4, 7
if ARGV[6] ~= '' then
  local found = redis.call('HMGET', KEYS[4], 'name', 'host')
  if found[1] ~= ARGV[7] or (found[2] == '1') ~= (ARGV[8] == '1') then
    return {'', 'STALE'}
  end
  if ARGV[9] ~= '' and redis.call('HEXISTS', KEYS[6], ARGV[9]) == 0 then
    return {'', 'STALE'}
  end
  a = 11
  for i = 1, tonumber(ARGV[10]) do
    local value = redis.call('HGET', KEYS[5], ARGV[a])
    if (ARGV[a + 1] == '1' and value ~= ARGV[a + 2]) or (ARGV[a + 1] ~= '1' and value) then
      return {'', 'STALE'}
    end
    a = a + 3
  end
  k = 7
end
if ARGV[a] ~= '' then
  local holder = redis.call('GET', KEYS[k])
  if holder and holder ~= ARGV[a] then
    return {'', 'NAMETAKEN'}
  end
  redis.call('SET', KEYS[k], ARGV[a], 'PX', ARGV[a + 1])
  k = k + 1
end
a = a + 2
for i = 1, tonumber(ARGV[a]) do
  local count = redis.call('INCR', KEYS[k])
  if count == 1 then
    redis.call('PEXPIRE', KEYS[k], ARGV[a + 2 * i])
  end
  if count > tonumber(ARGV[a + 2 * i - 1]) then
    return {'', 'RATE', i - 1, redis.call('PTTL', KEYS[k])}
  end
  k = k + 1
end
local id = redis.call('INCR', KEYS[1])
if id <= tonumber(ARGV[3]) then
  redis.call('SET', KEYS[1], ARGV[3])
  redis.call('INCR', KEYS[1])
end
local id_text = redis.call('GET', KEYS[1])
local record = epoch .. '-' .. id_text .. ARGV[1]
for i = k, #KEYS do
  redis.call('ZADD', KEYS[i], id_text, record)
  redis.call('ZREMRANGEBYRANK', KEYS[i], 0, -tonumber(ARGV[2]) - 1)
end
if ARGV[5] ~= '' then
  redis.call('SET', KEYS[3], record, 'PX', ARGV[5])
end
if ARGV[4] ~= '' then
  redis.call('PUBLISH', ARGV[4], record)
end
return {id_text, epoch}
"""

# Fixed-window counter: the first hit of a window starts its expiry.
RATE = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if count > tonumber(ARGV[1]) then
  return redis.call('PTTL', KEYS[1])
end
return 0
"""

# Presence: one sorted set per room; members are "<user>\t<process>", scored by the time
# (ms) the process last promised to renew them by. A user is online while any of their
# members is live, so several processes and tabs count once.
PRESENCE_HAS_USER = """
local function live_user(key, user, now)
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', key, now, '+inf')) do
    if string.sub(member, 1, #user + 1) == user .. '\t' then
      return true
    end
  end
  return false
end
"""
PRESENCE_ADD = PRESENCE_HAS_USER + """
local was_online = live_user(KEYS[1], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1] .. '\t' .. ARGV[2])
redis.call('SADD', KEYS[2], ARGV[5])
return was_online and 0 or 1
"""
PRESENCE_REMOVE = PRESENCE_HAS_USER + """
redis.call('ZREM', KEYS[1], ARGV[1] .. '\t' .. ARGV[2])
return live_user(KEYS[1], ARGV[1], ARGV[3]) and 0 or 1
"""
PRESENCE_EXPIRE = PRESENCE_HAS_USER + """
local gone = {}
for _, room in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local key = KEYS[2] .. room
  local stale = redis.call('ZRANGEBYSCORE', key, '-inf', '(' .. ARGV[1])
  if #stale > 0 then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. ARGV[1])
    for _, member in ipairs(stale) do
      local user = string.match(member, '^(.*)\t')
      if user and not live_user(key, user, ARGV[1]) then
        table.insert(gone, room)
        table.insert(gone, user)
      end
    end
  end
end
return gone
"""

# Put back what a process knows into a Redis that lost it: ids go on above what it has
# seen. A Redis that came back empty, or a primary promoted without the last writes (its
# sequence is behind), starts a new epoch, so that no listener is ever sent an id it saw
# for another event; a process that finds this done already changes nothing.
RESTORE = """
local behind = (tonumber(redis.call('GET', KEYS[1])) or 0) < tonumber(ARGV[1])
if behind then
  redis.call('SET', KEYS[1], ARGV[1])
end
if behind or redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('SET', KEYS[2], ARGV[2])
end
return redis.call('GET', KEYS[2])
"""

CLAIM = """
if ARGV[3] == '1' and redis.call('EXISTS', KEYS[2]) == 0 then
  return redis.error_reply('NOEPOCH')
end
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
"""

# A session: its record, and the name's holder (whom private messages to it reach).
START_SESSION = """
redis.call('HSET', KEYS[1], 'name', ARGV[1], 'key', ARGV[2], 'host', ARGV[3],
           'started', ARGV[6], 'address', ARGV[7])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('SET', KEYS[2], ARGV[4] .. '\t' .. ARGV[1], 'PX', ARGV[5])
"""

# Ending a session frees its name and stops private messages reaching it, at once.
END_SESSION = """
local found = redis.call('HMGET', KEYS[1], 'name', 'key', 'host')
if not found[1] then
  return false
end
redis.call('DEL', KEYS[1])
local name_key = ARGV[2] .. found[2]
if redis.call('GET', name_key) == ARGV[1] then
  redis.call('DEL', name_key)
end
local holder_key = ARGV[3] .. found[2]
local holder = redis.call('GET', holder_key)
if holder and string.sub(holder, 1, #ARGV[1] + 1) == ARGV[1] .. '\t' then
  redis.call('DEL', holder_key)
end
return found
"""

MAKE_HOST = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], 'host', '1')
return 1
"""

RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
end
"""
