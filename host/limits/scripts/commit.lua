-- commit replaces a reservation's estimate with the real use (see
-- counters.reconcile).
-- KEYS: the reservation's scope hashes.
-- ARGV: window ms, ttl s, reserved tokens, reserved nanos, used tokens, used
-- nanos, the reservation's window, day and month, and 1 to reconcile the
-- minute windows too (0 for a late replay, which must touch budgets only),
-- the epoch marker's key and the epoch the reservation was made in.
-- A reservation made before Redis lost its counters and was re-seeded (the
-- epoch changed) is not in them: a live commit charges the use alone; a
-- replay of a commit kept through the outage is dropped, as the ledger the
-- counters were re-seeded from already holds that request.
local window, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local rt, rm, ut, um = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local rwin, rday, rmonth = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local windows = ARGV[10] == '1'
local marker, repoch = ARGV[11], tonumber(ARGV[12])
if marker ~= '' and repoch ~= 0 and tonumber(redis.call('GET', marker) or '0') ~= repoch then
  if not windows then return 0 end
  rt, rm = 0, 0
end
-- Last, the leases' key and the reservation's lease: a live commit whose
-- lease a sweep already took (its estimate was refunded) charges its use
-- alone.
local leases, lease = ARGV[13], ARGV[14]
if leases ~= '' and lease ~= '' then
  if redis.call('ZREM', leases, lease) == 0 and windows then rt, rm = 0, 0 end
  redis.call('HDEL', leases .. ':data', lease)
end
local p = now(window)
local seen = {}
for _, key in ipairs(KEYS) do
  if not seen[key] then
    seen[key] = true
    reconcile(key, p, ttl, rt, rm, ut, um, rwin, rday, rmonth, windows)
  end
end
return 1
