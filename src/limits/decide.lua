-- One atomic rate-limit decision: minute, hour and day sliding windows plus the calendar
-- month, by Redis's clock, on ONE hash per API key (hash-tagged with the key id). Mirrors
-- src/limits/windows.rs exactly.
-- Fields: `<w>:<bucket>` for the buckets of window w (m, h, d); `mo:<yyyymm>` per month.
-- KEYS[1]: the key's hash.
-- ARGV: limit minute, hour, day, month (-1 = none), cost, this month's id, its end (ms),
--       next month's id, its end (ms), and optionally a time in ms to use instead of Redis's
--       clock (only tests pass it, to replay a sequence against the in-process limiter).
-- Returns: allowed, then used/reset/retry/reset-if-counted for minute, hour, day, month,
-- then has_month.
local key = KEYS[1]
local now = tonumber(ARGV[10])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local cost = tonumber(ARGV[5])
local names = {'m', 'h', 'd'}
local spans = {60000, 3600000, 86400000}
local slots = 13

local month_field, month_end = 'mo:' .. ARGV[6], tonumber(ARGV[7])
if now >= month_end then
  month_field, month_end = 'mo:' .. ARGV[8], tonumber(ARGV[9])
end

-- Every field this decision reads, in one HMGET.
local fields, current = {}, {}
for w = 1, 3 do
  local cur = math.floor(now / (spans[w] / 12))
  current[w] = cur
  for i = 1, slots do fields[#fields + 1] = names[w] .. ':' .. (cur - slots + i) end
end
fields[#fields + 1] = month_field
local vals = redis.call('HMGET', key, unpack(fields))

local function secs(ms) return math.ceil(ms / 1000) end
local allowed, out = 1, {}
for w = 1, 3 do
  local bucket_ms = spans[w] / 12
  local counts, used = {}, 0
  for i = 1, slots do
    counts[i] = tonumber(vals[(w - 1) * slots + i]) or 0
    used = used + counts[i]
  end
  local limit = tonumber(ARGV[w])
  local boundary = (current[w] + 1) * bucket_ms
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
local has_month = 0
if month_limit >= 0 then
  has_month = 1
  local used = tonumber(vals[3 * slots + 1]) or 0
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
    redis.call('HINCRBY', key, names[w] .. ':' .. current[w], cost)
  end
  if has_month == 1 then redis.call('HINCRBY', key, month_field, cost) end
  -- Drop fields that left their window once they pile up.
  if redis.call('HLEN', key) > 6 * slots then
    for _, field in ipairs(redis.call('HKEYS', key)) do
      local name, n = string.match(field, '^(%a+):(%d+)$')
      n = tonumber(n)
      local w = ({m = 1, h = 2, d = 3})[name]
      if (w and n < current[w] - slots + 1) or (name == 'mo' and field ~= month_field) then
        redis.call('HDEL', key, field)
      end
    end
  end
  -- Live while any window can still count something: a day and a bucket, or the month.
  local ttl = spans[3] + spans[3] / 12
  if has_month == 1 then ttl = math.max(ttl, month_end + 86400000 - now) end
  redis.call('PEXPIRE', key, ttl)
end
table.insert(out, 1, allowed)
out[#out + 1] = has_month
return out
