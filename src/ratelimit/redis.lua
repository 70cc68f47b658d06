-- keymint rate-limit policy: every limit of one policy decided atomically on the
-- server's clock. KEYS[i] holds limit i's state. ARGV[1] = cost (0 = peek), then three
-- values per limit: kind (0 = GCRA, 1 = UTC day, 2 = UTC month), a, b where
-- GCRA: a = emission interval in ns, b = burst; calendar: a = limit, b = 0.
-- GCRA state: theoretical arrival time in microseconds since the epoch.
-- Calendar state: window * 2^32 + count (window = days or months since 1970-01).
-- Reply: {allowed, limit, remaining, reset_after_us, retry_after_us (-1 = none), index}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local cost = tonumber(ARGV[1])
local DAY = 86400000000
local W = 4294967296

local function civil(z)
  z = z + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
    - math.floor(doe / 146096)) / 365)
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local m = mp < 10 and mp + 3 or mp - 9
  if m <= 2 then y = y + 1 end
  return y, m
end

local function days_from_civil(y, m)
  if m <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = m > 2 and m - 3 or m + 9
  local doy = math.floor((153 * mp + 2) / 5)
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

local function window(kind)
  local days = math.floor(now / DAY)
  if kind == 1 then return days, (days + 1) * DAY end
  local y, m = civil(days)
  local idx = (y - 1970) * 12 + m - 1
  local ny, nm = y, m + 1
  if nm == 13 then ny, nm = y + 1, 1 end
  return idx, days_from_civil(ny, nm) * DAY
end

-- one limit: returns allowed, limit, remaining, reset, retry, new_state, ttl_ms
local function step(i)
  local kind = tonumber(ARGV[2 + (i - 1) * 3])
  local a = tonumber(ARGV[3 + (i - 1) * 3])
  local b = tonumber(ARGV[4 + (i - 1) * 3])
  local raw = redis.call('GET', KEYS[i])
  local state = raw and tonumber(raw) or 0
  if kind == 0 then
    local T = a / 1000
    local tau = T * b
    local debt = math.max(state, now) - now
    local free = math.max(0, math.floor((tau - debt) / T + 1e-9))
    if cost == 0 then
      if free >= 1 then return 1, b, free, debt, -1, nil, 0 end
      return 0, b, 0, debt, math.max(1, debt + T - tau), nil, 0
    end
    local nd = debt + T * cost
    if nd <= tau + 1e-6 then
      local left = math.max(0, math.floor((tau - nd) / T + 1e-9))
      return 1, b, left, nd, -1, now + nd, math.ceil(nd / 1000) + 1
    end
    return 0, b, free, debt, math.max(1, nd - tau), nil, 0
  end
  local idx, wend = window(kind)
  local used = 0
  if math.floor(state / W) == idx then used = state - idx * W end
  local left = math.max(0, a - used)
  local reset = wend - now
  if cost == 0 then
    if left >= 1 then return 1, a, left, reset, -1, nil, 0 end
    return 0, a, 0, reset, reset, nil, 0
  end
  if cost <= left then
    return 1, a, left - cost, reset, -1, idx * W + used + cost, math.ceil(reset / 1000) + 1000
  end
  return 0, a, left, reset, reset, nil, 0
end

local best = nil
local denied = false
local writes = {}
for i = 1, #KEYS do
  local ok, lim, rem, reset, retry, new, ttl = step(i)
  local d = {ok, lim, rem, reset, retry, i - 1}
  if ok == 0 then denied = true end
  if new then writes[#writes + 1] = {KEYS[i], new, ttl} end
  if best == nil then
    best = d
  elseif best[1] == 1 and ok == 0 then
    best = d
  elseif best[1] == 0 and ok == 0 then
    if retry > best[5] then best = d end
  elseif best[1] == 1 and ok == 1 then
    if rem < best[3] or (rem == best[3] and reset > best[4]) then best = d end
  end
end
if not denied then
  for _, w in ipairs(writes) do
    redis.call('SET', w[1], string.format('%.3f', w[2]), 'PX', w[3])
  end
end
best[4] = math.ceil(best[4])
best[5] = math.ceil(best[5])
return best
