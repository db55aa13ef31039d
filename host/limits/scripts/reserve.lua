-- reserve checks a request against every limit of every scope and, only if
-- it fits all of them, charges its estimate to all of them.
-- KEYS: one hash per scope.
-- ARGV: window ms, ttl s, tokens, nanos, then per scope rpm, tpm, daily
-- tokens, monthly tokens, monthly nanos, then the epoch marker's key, the
-- leases' key, the reservation's lease and its duration in ms (a lease
-- records the reservation until its commit, for a sweep to refund if the
-- commit never comes).
-- Returns: admitted (0/1), sec, usec, then per scope the violation mask and
-- rp, rc, tp, tc, dt, mt, mn (after the charge when admitted), and last the
-- epoch (0 without a marker); or -1 alone when the counters are to be seeded
-- first.
local epoch = 0
local marker = ARGV[5 + 5 * #KEYS]
if marker ~= '' then
  local v = redis.call('GET', marker)
  if not v then return {-1} end
  epoch = tonumber(v) or 0
end
local window, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local tokens, nanos = tonumber(ARGV[3]), tonumber(ARGV[4])
local p = now(window)

local function weighted(prev, cur)
  return math.floor((prev * (window - p.into) + window - 1) / window) + cur
end
local function over(used, need, limit)
  return limit > 0 and used + math.max(need, 1) > limit
end

local state, masks = {}, {}
local denied = false
for i, key in ipairs(KEYS) do
  local c = load(key, p)
  local a = 4 + (i - 1) * 5
  local mask = 0
  if over(weighted(c.rp, c.rc), 1, tonumber(ARGV[a + 1])) then mask = mask + 1 end
  if over(weighted(c.tp, c.tc), tokens, tonumber(ARGV[a + 2])) then mask = mask + 2 end
  if over(c.dt, tokens, tonumber(ARGV[a + 3])) then mask = mask + 4 end
  if over(c.mt, tokens, tonumber(ARGV[a + 4])) then mask = mask + 8 end
  if over(c.mn, nanos, tonumber(ARGV[a + 5])) then mask = mask + 16 end
  if mask ~= 0 then denied = true end
  state[i], masks[i] = c, mask
end

if not denied then
  local first = {}
  for i, key in ipairs(KEYS) do
    if first[key] then
      state[i] = state[first[key]]
    else
      first[key] = i
      local c = state[i]
      c.rc = c.rc + 1
      c.tc = c.tc + tokens
      c.dt = c.dt + tokens
      c.mt = c.mt + tokens
      c.mn = c.mn + nanos
      store(key, c, ttl)
    end
  end
  local leases = ARGV[6 + 5 * #KEYS]
  if leases ~= '' then
    local lease = ARGV[7 + 5 * #KEYS]
    local expires = p.sec * 1000 + math.floor(p.usec / 1000) + tonumber(ARGV[8 + 5 * #KEYS])
    redis.call('ZADD', leases, expires, lease)
    redis.call('HSET', leases .. ':data', lease,
      -- Numbers as strings: cjson writes %.14g, which would round.
      cjson.encode({k = KEYS, t = int(tokens), n = int(nanos), w = int(p.win), d = int(p.day), m = int(p.month)}))
  end
end

local out = {denied and 0 or 1, p.sec, p.usec}
for i = 1, #KEYS do
  local c = state[i]
  for _, v in ipairs({masks[i], c.rp, c.rc, c.tp, c.tc, c.dt, c.mt, c.mn}) do
    out[#out + 1] = v
  end
end
out[#out + 1] = epoch
return out
