"""The Redis store's server-side scripts: each budget operation is ONE atomic Lua script.

Per account (``{prefix}:{name}@{window}``) a hash holds the counters (``spent_nano``,
``spent_tokens``, ``spent_calls``, ``spent_bytes``, ``unpriced_calls``, ``reserved_nano``,
``reserved_tokens``, ``reserved_approx``, ``reserved_calls``, ``refusals``, ``lease_expiries``,
the limits last seen ``limit_*``) and one field ``r:<id>`` per live reservation
(``"nano tokens approx output"``); a sorted set (``...:leases``) orders the reservations by lease
expiry (ms). A settled or released reservation leaves a marker key ``{prefix}:done:<id>`` for a day,
so a retried settle counts once.

Money is kept in nano-dollars (10^-9 USD, integers): Lua numbers are doubles, exact up to 2^53,
which is $9,007,199 in nano-dollars (pico-dollars would stop being exact at $9,007). Amounts are
rounded up (a reservation or a spend never undercounts) and limits down.

Every script first returns the expired leases of its accounts to the pool (``reserved_*`` drop,
``lease_expiries`` grows): a worker killed mid-call holds its reservation for one lease at most.
Time is the server's (``TIME``) unless the caller passes one (tests).
"""

from __future__ import annotations

__all__ = ["RELEASE_EXPIRED", "RENEW", "RESERVE", "SETTLE"]

_NOW_AND_EXPIRE = """
local now = tonumber(ARGV[2])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local n = tonumber(ARGV[3])
local function num(h, f) return tonumber(redis.call('HGET', h, f) or '0') end
local function fmt(x) return string.format('%d', x) end
local function unhold(h, rid, v)
  local p, t, a = string.match(v, '^(%-?%d+) (%d+) (%d+)')
  if tonumber(p) > 0 then redis.call('HINCRBY', h, 'reserved_nano', -tonumber(p)) end
  redis.call('HINCRBY', h, 'reserved_tokens', -tonumber(t))
  redis.call('HINCRBY', h, 'reserved_approx', -tonumber(a))
  redis.call('HINCRBY', h, 'reserved_calls', -1)
  redis.call('HDEL', h, 'r:' .. rid)
end
local expired = 0
for i = 1, n do
  local h, z = KEYS[2 * i - 1], KEYS[2 * i]
  local gone = redis.call('ZRANGEBYSCORE', z, '-inf', now)
  for _, rid in ipairs(gone) do
    local v = redis.call('HGET', h, 'r:' .. rid)
    if v then
      unhold(h, rid, v)
      redis.call('HINCRBY', h, 'lease_expiries', 1)
      expired = expired + 1
    end
    redis.call('ZREM', z, rid)
  end
end
"""

RESERVE = (
    _NOW_AND_EXPIRE
    + """
-- ARGV: id, now, n, lease_ms, nano (-1: unpriced), input, output, fixed_pico (-1), rate_pico (-1),
--       min_output, ttl_s, then per account: usd_nano, tokens, calls, approx, refuse_unpriced (-1: none)
local id = ARGV[1]
local prev = redis.call('HGET', KEYS[1], 'r:' .. id)
if prev then  -- a retried reserve: the first one went through
  local p, t, a, o = string.match(prev, '^(%-?%d+) (%d+) (%d+) (%d+)$')
  return {1, tonumber(o), tonumber(p), expired}
end
local lease = tonumber(ARGV[4])
local nano = tonumber(ARGV[5])
local input = tonumber(ARGV[6])
local output = tonumber(ARGV[7])
local fixed = tonumber(ARGV[8])
local rate = tonumber(ARGV[9])
local min_out = tonumber(ARGV[10])
local ttl = tonumber(ARGV[11])
local function limit(i, k) return tonumber(ARGV[11 + (i - 1) * 5 + k]) end
if fixed >= 0 and rate > 0 and nano >= 0 then  -- cap_output: fit the output to the room left
  local fit = output
  for i = 1, n do
    local h = KEYS[2 * i - 1]
    local usd, tok = limit(i, 1), limit(i, 2)
    if usd >= 0 then
      local room = usd - num(h, 'spent_nano') - num(h, 'reserved_nano')
      local f = math.floor((room * 1000 - fixed) / rate) - 1
      if f < fit then fit = f end
    end
    if tok >= 0 then
      local f = tok - num(h, 'spent_tokens') - num(h, 'reserved_tokens') - input
      if f < fit then fit = f end
    end
  end
  if fit >= min_out and fit < output then
    output = fit
    nano = math.ceil((fixed + output * rate) / 1000)
  end
end
for i = 1, n do
  local h = KEYS[2 * i - 1]
  local usd, tok, calls, approx, refuse = limit(i, 1), limit(i, 2), limit(i, 3), limit(i, 4), limit(i, 5)
  redis.call('HSET', h, 'limit_nano', fmt(usd), 'limit_tokens', fmt(tok), 'limit_calls', fmt(calls),
             'limit_approx', fmt(approx))
  local reason, lim, spent, held, need = nil, 0, 0, 0, -1
  if usd >= 0 then
    spent, held = num(h, 'spent_nano'), num(h, 'reserved_nano')
    if nano < 0 then
      if refuse == 1 then reason, lim = 'unpriced', usd end
    elseif spent + held + nano > usd then
      reason, lim, need = 'usd', usd, nano
    end
  end
  if not reason and tok >= 0 then
    spent, held = num(h, 'spent_tokens'), num(h, 'reserved_tokens')
    if spent + held + input + output > tok then reason, lim, need = 'tokens', tok, input + output end
  end
  if not reason and calls >= 0 then
    spent, held = num(h, 'spent_calls'), num(h, 'reserved_calls')
    if spent + held >= calls then reason, lim, need = 'calls', calls, 1 end
  end
  if not reason and approx >= 0 then
    spent, held = math.floor(num(h, 'spent_bytes') / 4), num(h, 'reserved_approx')
    if spent + held + input > approx then reason, lim, need = 'approx_tokens', approx, input end
  end
  if reason then
    redis.call('HINCRBY', h, 'refusals', 1)
    redis.call('EXPIRE', h, ttl)
    return {0, reason, i, fmt(lim), fmt(spent), fmt(held), fmt(need), expired}
  end
end
local value = fmt(nano) .. ' ' .. fmt(input + output) .. ' ' .. fmt(input) .. ' ' .. fmt(output)
for i = 1, n do
  local h, z = KEYS[2 * i - 1], KEYS[2 * i]
  redis.call('HSET', h, 'r:' .. id, value)
  if nano > 0 then redis.call('HINCRBY', h, 'reserved_nano', nano) end
  redis.call('HINCRBY', h, 'reserved_tokens', input + output)
  redis.call('HINCRBY', h, 'reserved_approx', input)
  redis.call('HINCRBY', h, 'reserved_calls', 1)
  redis.call('ZADD', z, now + lease, id)
  redis.call('EXPIRE', h, ttl)
  redis.call('EXPIRE', z, ttl)
end
return {1, output, nano, expired}
"""
)

SETTLE = (
    _NOW_AND_EXPIRE
    + """
-- KEYS: account pairs, then the done marker. ARGV: id, now, n, count (1: settle, 0: release),
--       nano (-1: unpriced), tokens, bytes, failed (1/0), done_ttl_s
local id = ARGV[1]
local done = KEYS[2 * n + 1]
if redis.call('EXISTS', done) == 1 then return {0, expired} end
local count, nano, tokens = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local wire, failed, done_ttl = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
for i = 1, n do
  local h, z = KEYS[2 * i - 1], KEYS[2 * i]
  local v = redis.call('HGET', h, 'r:' .. id)
  if v then unhold(h, id, v) end
  redis.call('ZREM', z, id)
  if count == 1 then
    redis.call('HINCRBY', h, 'spent_calls', 1)
    if tokens > 0 then redis.call('HINCRBY', h, 'spent_tokens', tokens) end
    if wire > 0 then redis.call('HINCRBY', h, 'spent_bytes', wire) end
    if nano >= 0 then
      if nano > 0 then redis.call('HINCRBY', h, 'spent_nano', nano) end
    elseif failed == 0 then
      redis.call('HINCRBY', h, 'unpriced_calls', 1)
    end
  end
end
redis.call('SET', done, '1', 'EX', done_ttl)
return {1, expired}
"""
)

RENEW = (
    _NOW_AND_EXPIRE
    + """
-- KEYS: account pairs, then the done marker. ARGV: id, now, n, lease_ms, held value, ttl_s.
-- A reservation the store lost (a restart without persistence, an expiry during a long pause) is
-- held again: its call is still running.
local id = ARGV[1]
if redis.call('EXISTS', KEYS[2 * n + 1]) == 1 then return {0, expired} end
local lease, value, ttl = tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])
local restored = 0
for i = 1, n do
  local h, z = KEYS[2 * i - 1], KEYS[2 * i]
  if redis.call('HEXISTS', h, 'r:' .. id) == 0 then
    local p, t, a = string.match(value, '^(%-?%d+) (%d+) (%d+)')
    redis.call('HSET', h, 'r:' .. id, value)
    if tonumber(p) > 0 then redis.call('HINCRBY', h, 'reserved_nano', tonumber(p)) end
    redis.call('HINCRBY', h, 'reserved_tokens', tonumber(t))
    redis.call('HINCRBY', h, 'reserved_approx', tonumber(a))
    redis.call('HINCRBY', h, 'reserved_calls', 1)
    redis.call('EXPIRE', h, ttl)
    restored = restored + 1
  end
  redis.call('ZADD', z, now + lease, id)
  redis.call('EXPIRE', z, ttl)
end
return {1 + restored, expired}
"""
)

RELEASE_EXPIRED = (
    _NOW_AND_EXPIRE
    + """
-- ARGV: id (unused), now, n: only return expired leases (``statek budget show`` calls it first).
return {1, expired}
"""
)
