-- seed writes counters rebuilt from the ledger into Redis that lost its own,
-- and sets the epoch marker after the last batch. A seed that finds the
-- marker already set writes nothing: another replica seeded, and requests
-- may have been counted since.
-- KEYS: scope hashes. ARGV: window ms, ttl s, the marker's key, its value
-- (the new epoch, a positive integer),
-- 1 for the last batch, then per scope the last minute's requests and
-- tokens, the day's tokens, the month's tokens and nano-dollars.
-- Returns: 1 if written, 0 if another seed was first.
local window, ttl, epoch = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
if redis.call('EXISTS', epoch) == 1 then return 0 end
local p = now(window)
for i, key in ipairs(KEYS) do
  local a = 5 + (i - 1) * 5
  local c = {w = p.win, rp = 0, rc = tonumber(ARGV[a + 1]), tp = 0, tc = tonumber(ARGV[a + 2]),
    d = p.day, dt = tonumber(ARGV[a + 3]), m = p.month, mt = tonumber(ARGV[a + 4]), mn = tonumber(ARGV[a + 5])}
  store(key, c, ttl)
end
if ARGV[5] == '1' then redis.call('SET', epoch, ARGV[4]) end
return 1
