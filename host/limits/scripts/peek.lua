-- peek returns Redis's time and each scope's counters, rolled to now, without
-- changing anything.
-- KEYS: scope hashes. ARGV: window ms, the epoch marker's key.
-- Returns: sec, usec, then per scope rp, rc, tp, tc, dt, mt, mn; or -1 alone
-- when the counters are to be seeded first.
if unseeded(ARGV[2]) then return {-1} end
local p = now(tonumber(ARGV[1]))
local out = {p.sec, p.usec}
for _, key in ipairs(KEYS) do
  local c = load(key, p)
  for _, v in ipairs({c.rp, c.rc, c.tp, c.tc, c.dt, c.mt, c.mn}) do
    out[#out + 1] = v
  end
end
return out
