"""The Lua scripts of the Redis state backend (state/redis.py), each one atomic step on the server.

Every accounting key carries the hash tag `{acct}` (`modelyard:{acct}:…`), so one script may touch
all the rate windows and budget ledgers of a request on a Redis Cluster (one slot); the windows and
ledgers are a few hundred bytes per key or team, so one shard holds them easily. Time is Redis's own
(`TIME`): replicas with skewed clocks still share one window.

A rate window of scope S is a sorted set `rate:S` (member = ticket id, score = time) and a hash
`rtok:S` (member → tokens, plus `#t` = the tokens of the whole window). A budget ledger is a hash
`budget:S` {period, spent, reserved}.
"""

from __future__ import annotations

# Drop the entries of window (z, h) that are older than `cut`, keeping `#t` equal to the sum.
_EXPIRE = """
local function expire(z, h, cut)
  while true do
    local old = redis.call('ZRANGEBYSCORE', z, '-inf', cut, 'LIMIT', 0, 500)
    if #old == 0 then return end
    local toks = redis.call('HMGET', h, unpack(old))
    local freed = 0
    for k = 1, #toks do freed = freed + (tonumber(toks[k]) or 0) end
    redis.call('ZREM', z, unpack(old))
    redis.call('HDEL', h, unpack(old))
    redis.call('HINCRBY', h, '#t', -freed)
  end
end
local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1e6
end
local function take(z, h, now, member, tokens)
  redis.call('ZADD', z, now, member)
  redis.call('HSET', h, member, tokens)
  redis.call('HINCRBY', h, '#t', tokens)
  redis.call('EXPIRE', z, 61)
  redis.call('EXPIRE', h, 61)
end
"""

# Every rate take and budget reservation of one request, all or nothing.
# KEYS: (rate zset, rate hash) per limit, then one ledger per budget.
# ARGV: member, n_limits, n_budgets, (rpm, tpm, tokens) per limit (0 = no limit),
#       (period, limit, amount, seed, ttl_s) per budget (seed '' = none known; ttl 0 = none).
# Returns {'ok', spent1, reserved1, …} | {'rate', i, wait_s, requests, tokens}
#       | {'budget', j, spent, reserved} | {'seed', j} (the ledger does not hold this period yet).
ADMIT = _EXPIRE + """
local now = clock()
local member, nr, nb = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local a = 4
for i = 1, nr do
  local z, h = KEYS[2 * i - 1], KEYS[2 * i]
  local rpm, tpm, tokens = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  a = a + 3
  expire(z, h, now - 60)
  local reqs = redis.call('ZCARD', z)
  local used = tonumber(redis.call('HGET', h, '#t') or '0')
  local need_r, need_t = 0, 0
  if rpm > 0 then need_r = reqs + 1 - rpm end
  if tpm > 0 then need_t = used + tokens - tpm end
  if need_r > 0 or need_t > 0 then
    if tpm > 0 and tokens > tpm then return {'rate', i, 'inf', reqs, used} end
    local fr, ft, wait = 0, 0, 60
    local all = redis.call('ZRANGE', z, 0, -1, 'WITHSCORES')
    for k = 1, #all, 2 do
      fr = fr + 1
      ft = ft + (tonumber(redis.call('HGET', h, all[k])) or 0)
      if fr >= need_r and ft >= need_t then
        wait = tonumber(all[k + 1]) + 60 - now
        break
      end
    end
    return {'rate', i, tostring(math.max(wait, 0)), reqs, used}
  end
end
local held = {}
for j = 1, nb do
  local b = KEYS[2 * nr + j]
  local period, limit, amount = ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local seed, ttl = ARGV[a + 3], tonumber(ARGV[a + 4])
  a = a + 5
  local cur = redis.call('HMGET', b, 'period', 'spent', 'reserved')
  local spent, reserved = tonumber(cur[2]) or 0, tonumber(cur[3]) or 0
  if cur[1] ~= period then
    if seed == '' then return {'seed', j} end
    redis.call('DEL', b)
    redis.call('HSET', b, 'period', period, 'spent', seed, 'reserved', 0)
    if ttl > 0 then redis.call('EXPIRE', b, ttl) end
    spent, reserved = tonumber(seed), 0
  end
  if spent + reserved + amount > limit then
    return {'budget', j, tostring(spent), tostring(reserved)}
  end
  held[j] = amount
end
a = 4
for i = 1, nr do
  take(KEYS[2 * i - 1], KEYS[2 * i], now, member, tonumber(ARGV[a + 2]))
  a = a + 3
end
local out = {'ok'}
for j = 1, nb do
  local b = KEYS[2 * nr + j]
  local r = redis.call('HINCRBYFLOAT', b, 'reserved', held[j])
  out[#out + 1] = redis.call('HGET', b, 'spent')
  out[#out + 1] = r
end
return out
"""

# A batch of queued operations, applied in order. KEYS: the keys the operations name (by index).
# ARGV: a flat list of operations:
#   'a' zi hi member tokens        recount a ticket's tokens (adjust)
#   'f' zi hi member               give a ticket back (refund)
#   't' zi hi member tokens        take without checking (a deployment slot a replica took locally)
#   'u' zi hi                      read a window: appends requests, tokens
#   's' bi period reserved cost    settle a reservation: appends the spend after ('' if the ledger
#                                  moved to another period or is gone)
#   'p' bi period delta            add spend made while Redis was away (if the ledger holds the period)
BATCH = _EXPIRE + """
local now = clock()
local out = {}
local a = 1
while a <= #ARGV do
  local op = ARGV[a]
  if op == 'a' then
    local h, member, tokens = KEYS[tonumber(ARGV[a + 2])], ARGV[a + 3], tonumber(ARGV[a + 4])
    local old = redis.call('HGET', h, member)
    if old then
      redis.call('HSET', h, member, tokens)
      redis.call('HINCRBY', h, '#t', tokens - tonumber(old))
    end
    a = a + 5
  elseif op == 'f' then
    local z, h, member = KEYS[tonumber(ARGV[a + 1])], KEYS[tonumber(ARGV[a + 2])], ARGV[a + 3]
    if redis.call('ZREM', z, member) == 1 then
      local old = tonumber(redis.call('HGET', h, member) or '0')
      redis.call('HDEL', h, member)
      redis.call('HINCRBY', h, '#t', -old)
    end
    a = a + 4
  elseif op == 't' then
    take(KEYS[tonumber(ARGV[a + 1])], KEYS[tonumber(ARGV[a + 2])], now, ARGV[a + 3], tonumber(ARGV[a + 4]))
    a = a + 5
  elseif op == 'u' then
    local z, h = KEYS[tonumber(ARGV[a + 1])], KEYS[tonumber(ARGV[a + 2])]
    expire(z, h, now - 60)
    out[#out + 1] = redis.call('ZCARD', z)
    out[#out + 1] = tonumber(redis.call('HGET', h, '#t') or '0')
    a = a + 3
  elseif op == 's' then
    local b, period = KEYS[tonumber(ARGV[a + 1])], ARGV[a + 2]
    if redis.call('HGET', b, 'period') == period then
      local r = tonumber(redis.call('HINCRBYFLOAT', b, 'reserved', -tonumber(ARGV[a + 3])))
      if r < 0 then redis.call('HSET', b, 'reserved', 0) end
      out[#out + 1] = redis.call('HINCRBYFLOAT', b, 'spent', ARGV[a + 4])
    else
      out[#out + 1] = ''
    end
    a = a + 5
  elseif op == 'p' then
    local b, period = KEYS[tonumber(ARGV[a + 1])], ARGV[a + 2]
    if redis.call('HGET', b, 'period') == period then
      redis.call('HINCRBYFLOAT', b, 'spent', ARGV[a + 3])
    end
    a = a + 4
  else
    return redis.error_reply('unknown operation ' .. tostring(op))
  end
end
return out
"""
