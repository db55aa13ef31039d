-- sweep refunds the estimates of reservations whose lease expired before
-- their commit came: the replica that made them died (or lost Redis for
-- longer than the lease), and no commit will.
-- ARGV: window ms, ttl s, the leases' key, the most to sweep.
-- Returns: how many were refunded.
local window, ttl, leases, most = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local p = now(window)
local nowms = p.sec * 1000 + math.floor(p.usec / 1000)
local expired = redis.call('ZRANGEBYSCORE', leases, '-inf', nowms, 'LIMIT', 0, most)
for _, lease in ipairs(expired) do
  local data = redis.call('HGET', leases .. ':data', lease)
  if data then
    local r = cjson.decode(data)
    local seen = {}
    for _, key in ipairs(r.k) do
      if not seen[key] then
        seen[key] = true
        reconcile(key, p, ttl, tonumber(r.t), tonumber(r.n), 0, 0, tonumber(r.w), tonumber(r.d), tonumber(r.m), true)
      end
    end
  end
  redis.call('ZREM', leases, lease)
  redis.call('HDEL', leases .. ':data', lease)
end
return #expired
