-- One atomic rate-limit decision: minute, hour and day sliding windows plus the calendar
-- month, by Redis's clock. Mirrors src/limits/windows.rs exactly.
-- KEYS: minute hash, hour hash, day hash, this month's counter, next month's counter
--       (all hash-tagged with the key id, so one cluster slot).
-- ARGV: limit minute, hour, day, month (-1 = none), cost, end of this month (ms),
--       end of next month (ms), and optionally a time in ms to use instead of Redis's
--       clock (only tests pass it, to replay a sequence against the in-process limiter).
-- Returns: allowed, then used/reset/retry/reset-if-counted for minute, hour, day, month,
-- then has_month.
local now = tonumber(ARGV[8])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local cost = tonumber(ARGV[5])
local spans = {60000, 3600000, 86400000}
local slots = 13
local allowed = 1
local out = {}
local current = {}

local function secs(ms) return math.ceil(ms / 1000) end

for w = 1, 3 do
  local bucket_ms = spans[w] / 12
  local cur = math.floor(now / bucket_ms)
  current[w] = cur
  local fields = {}
  for i = 1, slots do fields[i] = cur - slots + i end
  local vals = redis.call('HMGET', KEYS[w], unpack(fields))
  local counts, used = {}, 0
  for i = 1, slots do
    counts[i] = tonumber(vals[i]) or 0
    used = used + counts[i]
  end
  local limit = tonumber(ARGV[w])
  local boundary = (cur + 1) * bucket_ms
  local reset = 0
  for i = 1, slots do
    if counts[i] > 0 then reset = secs(boundary + (i - 1) * bucket_ms - now) break end
  end
  local retry = 0
  if used + cost > limit then
    allowed = 0
    if cost > limit then
      retry = secs(spans[w])
    else
      local remaining, k = used, 0
      while k < slots and remaining + cost > limit do
        k = k + 1
        remaining = remaining - counts[k]
      end
      retry = secs(boundary + (k - 1) * bucket_ms - now)
    end
  end
  out[#out + 1] = used
  out[#out + 1] = reset
  out[#out + 1] = retry
  if reset > 0 then
    out[#out + 1] = reset
  else
    out[#out + 1] = secs(boundary + (slots - 1) * bucket_ms - now)
  end
end

local month_limit = tonumber(ARGV[4])
local month_key, month_end = KEYS[4], tonumber(ARGV[6])
if now >= month_end then
  month_key, month_end = KEYS[5], tonumber(ARGV[7])
end
local has_month = 0
if month_limit >= 0 then
  has_month = 1
  local used = tonumber(redis.call('GET', month_key)) or 0
  local until_end = math.max(secs(month_end - now), 1)
  local retry, reset = 0, 0
  if used + cost > month_limit then
    allowed = 0
    retry = until_end
  end
  if used > 0 then reset = until_end end
  out[#out + 1] = used
  out[#out + 1] = reset
  out[#out + 1] = retry
  out[#out + 1] = until_end
else
  for _ = 1, 4 do out[#out + 1] = 0 end
end

if allowed == 1 then
  for w = 1, 3 do
    redis.call('HINCRBY', KEYS[w], current[w], cost)
    -- Drop buckets that left the window once they pile up; the TTL removes idle hashes.
    if redis.call('HLEN', KEYS[w]) > 2 * slots then
      local oldest = current[w] - slots + 1
      for _, field in ipairs(redis.call('HKEYS', KEYS[w])) do
        if tonumber(field) < oldest then redis.call('HDEL', KEYS[w], field) end
      end
    end
    redis.call('PEXPIRE', KEYS[w], spans[w] + spans[w] / 12)
  end
  if has_month == 1 then
    redis.call('INCRBY', month_key, cost)
    redis.call('PEXPIREAT', month_key, month_end + 86400000)
  end
end
table.insert(out, 1, allowed)
out[#out + 1] = has_month
return out
