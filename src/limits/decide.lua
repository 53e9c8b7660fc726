-- Rate-limit decisions for ONE API key, atomically: minute, hour and day sliding windows plus
-- the calendar month, by Redis's clock, on one string per key (hash-tagged with the key id).
-- Decides a batch of calls in order, as if they had arrived one after another: the node
-- coalesces concurrent calls for the same key into one script call. Mirrors
-- src/limits/windows.rs exactly.
-- State: 44 little-endian doubles (struct): per window (m, h, d) the newest bucket counted
-- and a ring of 13 bucket counts (bucket b in slot b % 13), then the month's id (yyyymm) and
-- its count. One GET and one SET: field names built per call cost more than the decision.
-- KEYS[1]: the key's state.
-- ARGV: limit minute, hour, day, month (-1 = none), this month's id, its end (ms), next
--       month's id, its end (ms), a time in ms to use instead of Redis's clock or '' (only
--       tests pass one, to replay a sequence against the in-process limiter), then the cost
--       of each call in the batch.
-- Returns, per call: allowed, used/reset/retry/reset-if-counted for minute, hour, day,
-- month, has_month (18 integers).
local key = KEYS[1]
local now = tonumber(ARGV[9])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local spans = {60000, 3600000, 86400000}
local slots = 13
local stride = slots + 1
local format = '<' .. string.rep('d', 3 * stride + 2)

local month_id, month_end = tonumber(ARGV[5]), tonumber(ARGV[6])
if now >= month_end then
  month_id, month_end = tonumber(ARGV[7]), tonumber(ARGV[8])
end
local month_limit = tonumber(ARGV[4])
local has_month = month_limit >= 0 and 1 or 0

local raw = redis.call('GET', key)
local state = raw and {struct.unpack(format, raw)}

-- Each window as the counts of buckets current-12 .. current, oldest first.
local counts, sums, limits, current, newest = {}, {}, {}, {}, {}
for w = 1, 3 do
  local cur = math.floor(now / (spans[w] / 12))
  local base = (w - 1) * stride
  local top = state and state[base + 1] or -1
  local c, sum = {}, 0
  for i = 1, slots do
    local b = cur - slots + i
    local n = 0
    if b <= top and b > top - slots then n = state[base + 2 + b % slots] end
    c[i] = n
    sum = sum + n
  end
  counts[w], sums[w], limits[w], current[w], newest[w] = c, sum, tonumber(ARGV[w]), cur, top
end
local month_used = 0
if state and state[3 * stride + 1] == month_id then month_used = state[3 * stride + 2] end

local function secs(ms) return math.ceil(ms / 1000) end
local out, added = {}, 0
for j = 10, #ARGV do
  local cost = tonumber(ARGV[j])
  local first = #out + 1
  out[first] = 1
  for w = 1, 3 do
    local bucket_ms = spans[w] / 12
    local c, used, limit = counts[w], sums[w], limits[w]
    local boundary = (current[w] + 1) * bucket_ms
    local reset = 0
    for i = 1, slots do
      if c[i] > 0 then reset = secs(boundary + (i - 1) * bucket_ms - now) break end
    end
    local retry = 0
    if used + cost > limit then
      out[first] = 0
      if cost > limit then
        retry = secs(spans[w])
      else
        local remaining, k = used, 0
        while k < slots and remaining + cost > limit do
          k = k + 1
          remaining = remaining - c[k]
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
  if has_month == 1 then
    local until_end = math.max(secs(month_end - now), 1)
    local retry, reset = 0, 0
    if month_used + cost > month_limit then
      out[first] = 0
      retry = until_end
    end
    if month_used > 0 then reset = until_end end
    out[#out + 1] = month_used
    out[#out + 1] = reset
    out[#out + 1] = retry
    out[#out + 1] = until_end
  else
    for _ = 1, 4 do out[#out + 1] = 0 end
  end
  out[#out + 1] = has_month
  if out[first] == 1 then
    for w = 1, 3 do
      counts[w][slots] = counts[w][slots] + cost
      sums[w] = sums[w] + cost
    end
    month_used = month_used + cost
    added = added + cost
  end
end

if added > 0 then
  local out_state = {}
  for w = 1, 3 do
    local base = (w - 1) * stride
    if newest[w] > current[w] then
      -- The clock went back (a Redis fail-over): keep the newer ring and count the calls in
      -- its newest bucket, never in one that leaves the window sooner.
      for i = 1, stride do out_state[base + i] = state[base + i] end
      local at = base + 2 + newest[w] % slots
      out_state[at] = out_state[at] + added
    else
      out_state[base + 1] = current[w]
      for i = 1, slots do
        out_state[base + 2 + (current[w] - slots + i) % slots] = counts[w][i]
      end
    end
  end
  out_state[3 * stride + 1] = month_id
  out_state[3 * stride + 2] = month_used
  -- Live while any window can still count something: a day and a bucket, or the month.
  local ttl = spans[3] + spans[3] / 12
  if has_month == 1 then ttl = math.max(ttl, month_end + 86400000 - now) end
  redis.call('SET', key, struct.pack(format, unpack(out_state)), 'PX', ttl)
end
return out
