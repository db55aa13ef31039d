-- Shared by the limiter's scripts; concatenated in front of each one. The
-- arithmetic repeats counters.go: keep the two in step.

local function int(x)
  -- HSET stringifies Lua numbers with %.14g; large counts would lose digits.
  return string.format('%d', x)
end

-- month_of returns year*12 + month-1 of a day counted from 1970-01-01, UTC
-- (Howard Hinnant's civil_from_days).
local function month_of(days)
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local m = mp < 10 and mp + 3 or mp - 9
  if m <= 2 then y = y + 1 end
  return y * 12 + m - 1
end

-- now reads Redis's clock, so that every replica counts in the same windows.
local function now(window)
  local t = redis.call('TIME')
  local sec, usec = tonumber(t[1]), tonumber(t[2])
  local ms = sec * 1000 + math.floor(usec / 1000)
  local win = math.floor(ms / window)
  local day = math.floor(sec / 86400)
  return {sec = sec, usec = usec, win = win, into = ms - win * window, day = day, month = month_of(day)}
end

-- mn is the month's money in nano-dollars. Lua counts in doubles: exact to
-- 2^53 nano-dollars, about nine million dollars a scope a month.
local fields = {'w', 'rp', 'rc', 'tp', 'tc', 'd', 'dt', 'm', 'mt', 'mn'}

-- load reads a scope's counters and rolls them to the current period. A hash
-- written before money was counted in nano-dollars has the month's money in
-- micro-dollars as mm: it is carried over, so an upgrade resets no budget.
local function load(key, p)
  local h = redis.call('HMGET', key, unpack(fields))
  local c = {}
  for i, f in ipairs(fields) do c[f] = tonumber(h[i]) or 0 end
  if not h[#fields] then
    local mm = tonumber(redis.call('HGET', key, 'mm'))
    if mm then c.mn = mm * 1000 end
  end
  if c.w == p.win - 1 then
    c.rp, c.tp, c.rc, c.tc = c.rc, c.tc, 0, 0
  elseif c.w ~= p.win then
    c.rp, c.tp, c.rc, c.tc = 0, 0, 0, 0
  end
  c.w = p.win
  if c.d ~= p.day then c.d, c.dt = p.day, 0 end
  if c.m ~= p.month then c.m, c.mt, c.mn = p.month, 0, 0 end
  return c
end

-- unseeded reports whether Redis lost its counters: the epoch marker the
-- last seed left is gone (a restart without persistence, a failover to an
-- empty replica). An empty marker name means the limiter does not seed.
local function unseeded(epoch)
  return epoch ~= '' and redis.call('EXISTS', epoch) == 0
end

local function store(key, c, ttl)
  redis.call('HSET', key, 'w', int(c.w), 'rp', int(c.rp), 'rc', int(c.rc), 'tp', int(c.tp), 'tc', int(c.tc),
    'd', int(c.d), 'dt', int(c.dt), 'm', int(c.m), 'mt', int(c.mt), 'mn', int(c.mn))
  redis.call('HDEL', key, 'mm')
  redis.call('EXPIRE', key, ttl)
end

-- reconcile replaces a reservation's estimate (rt tokens, rm nano-dollars)
-- with the use (ut, um) in one scope, in the periods the estimate was
-- charged to (rwin, rday, rmonth) if they are still current; windows also
-- reconciles the minute windows.
local function reconcile(key, p, ttl, rt, rm, ut, um, rwin, rday, rmonth, windows)
  local dt, dm = ut - rt, um - rm
  local c = load(key, p)
  if windows then
    if rwin == c.w then
      c.tc = math.max(0, c.tc + dt)
    elseif rwin == c.w - 1 then
      c.tp = math.max(0, c.tp + dt)
    elseif dt > 0 then
      c.tc = c.tc + dt
    end
  end
  if rday == c.d then c.dt = math.max(0, c.dt + dt) else c.dt = c.dt + ut end
  if rmonth == c.m then
    c.mt = math.max(0, c.mt + dt)
    c.mn = math.max(0, c.mn + dm)
  else
    c.mt = c.mt + ut
    c.mn = c.mn + um
  end
  store(key, c, ttl)
end
