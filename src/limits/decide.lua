-- Rate-limit decisions for ONE API key, atomically: minute, hour and day sliding windows plus
-- the calendar month, by Redis's clock, on one string per key (hash-tagged with the key id).
-- Decides a batch of calls in order, as if they had arrived one after another: the node
-- coalesces concurrent calls for the same key into one script call. Mirrors
-- src/limits/windows.rs exactly.
-- A hot key's node may also ask for a LEASE: units counted now in every window, as if that
-- many calls had been admitted at this instant, which the node then admits locally until the
-- current minute bucket (or the month) ends; units it did not use come back in a later call
-- as RELEASES (bucket start, units, month id), uncounted from the buckets they went into.
-- State: 47 little-endian doubles (struct): per window (m, h, d) the newest bucket, the sum
-- of the window and a ring of 13 bucket counts (bucket b in slot b % 13); then the month's
-- id (yyyymm) and its count. One GET, one SET. Lua is slow inside Redis: the script keeps
-- the running sum so a decision reads O(1) state, and touches the ring only when a bucket
-- boundary passed or a call is refused.
-- KEYS[1]: the key's state.
-- ARGV: limit minute, hour, day, month (-1 = none), this month's id, its end (ms), next
--       month's id, its end (ms), a time in ms to use instead of Redis's clock or '' (only
--       tests pass one, to replay a sequence against the in-process limiter), the lease
--       asked for (units, 0 = none), the number of releases R and R triples (bucket start
--       ms, units, month id), then the cost of each call in the batch.
-- Returns, per call: allowed, used/reset/retry/reset-if-counted for minute, hour, day,
-- month, has_month (18 integers); then, when a lease was asked for: the units granted, the
-- ms the lease may be used for, the start of the minute bucket it went into, and used /
-- reset-in-ms of minute, hour, day and month once the lease is counted (11 integers); last,
-- the time decided at (ms): a refusal stays exact until the next whole second, so the node
-- may repeat it until then. All packed as little-endian doubles in one bulk string: a reply
-- of 18 × batch integers costs both Redis and the client's parser far more.
local key = KEYS[1]
local now = tonumber(ARGV[9])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local floor, ceil = math.floor, math.ceil
local slots, stride, size = 13, 15, 47
local buckets = {5000, 300000, 7200000}
local format = '<' .. string.rep('d', size)

local month_id, month_end = tonumber(ARGV[5]), tonumber(ARGV[6])
if now >= month_end then
  month_id, month_end = tonumber(ARGV[7]), tonumber(ARGV[8])
end
local month_limit = tonumber(ARGV[4])
local has_month = month_limit >= 0

local raw = redis.call('GET', key)
local s
if raw then
  s = {struct.unpack(format, raw)}
else
  s = {}
  for i = 1, size do s[i] = 0 end
end

-- Bring each window to the bucket holding `now`: buckets that left it give their slot (and
-- their count) back. A clock that went back (a Redis fail-over) keeps the newer window,
-- which counts more, never less. `first` = oldest bucket with calls (1..13), or nil.
local current, first, limits = {}, {}, {}
for w = 1, 3 do
  local base = (w - 1) * stride
  local cur, top = floor(now / buckets[w]), s[base + 1]
  if cur > top then
    if cur - top >= slots then
      for i = base + 2, base + stride do s[i] = 0 end
    else
      for b = top + 1, cur do
        local at = base + 3 + b % slots
        s[base + 2] = s[base + 2] - s[at]
        s[at] = 0
      end
    end
    s[base + 1] = cur
  else
    cur = top
  end
  current[w], limits[w] = cur, tonumber(ARGV[w])
end

-- Releases: a lease's unused units leave the buckets they were counted in, where those are
-- still kept (never below zero); the month's only while it is the same month.
local changed = false
local releases = tonumber(ARGV[11])
for r = 0, releases - 1 do
  local at_ms, units = tonumber(ARGV[12 + 3 * r]), tonumber(ARGV[13 + 3 * r])
  local month = tonumber(ARGV[14 + 3 * r])
  for w = 1, 3 do
    local base, b = (w - 1) * stride, floor(at_ms / buckets[w])
    if b <= current[w] and current[w] - b < slots then
      local at = base + 3 + b % slots
      local d = math.min(s[at], units)
      s[at], s[base + 2] = s[at] - d, s[base + 2] - d
      changed = changed or d > 0
    end
  end
  if s[3 * stride + 1] == month then
    local d = math.min(s[3 * stride + 2], units)
    s[3 * stride + 2] = s[3 * stride + 2] - d
    changed = changed or d > 0
  end
end

for w = 1, 3 do
  local base, cur = (w - 1) * stride, current[w]
  if s[base + 2] > 0 then
    for i = 1, slots do
      if s[base + 3 + (cur - slots + i) % slots] > 0 then first[w] = i break end
    end
  end
end
local month_used = 0
if s[3 * stride + 1] == month_id then month_used = s[3 * stride + 2] end

local out, n, added = {}, 0, 0
-- Counts `units` at `now` in every window and the month.
local function count(units)
  for w = 1, 3 do
    local base = (w - 1) * stride
    local at = base + 3 + current[w] % slots
    s[at] = s[at] + units
    s[base + 2] = s[base + 2] + units
    if not first[w] then first[w] = slots end
  end
  month_used = month_used + units
  added = added + units
end
for j = 12 + 3 * releases, #ARGV do
  local cost = tonumber(ARGV[j])
  local allowed = 1
  local at_allowed = n + 1
  n = n + 1
  for w = 1, 3 do
    local base, bucket_ms, cur = (w - 1) * stride, buckets[w], current[w]
    local used, limit = s[base + 2], limits[w]
    local boundary = (cur + 1) * bucket_ms - now
    local reset = 0
    if first[w] then reset = ceil((boundary + (first[w] - 1) * bucket_ms) / 1000) end
    local retry = 0
    if used + cost > limit then
      allowed = 0
      if cost > limit then
        retry = ceil(bucket_ms * 12 / 1000)
      else
        local remaining, k = used, 0
        while k < slots and remaining + cost > limit do
          k = k + 1
          remaining = remaining - s[base + 3 + (cur - slots + k) % slots]
        end
        retry = ceil((boundary + (k - 1) * bucket_ms) / 1000)
      end
    end
    out[n + 1], out[n + 2], out[n + 3] = used, reset, retry
    if reset > 0 then
      out[n + 4] = reset
    else
      out[n + 4] = ceil((boundary + (slots - 1) * bucket_ms) / 1000)
    end
    n = n + 4
  end
  if has_month then
    local until_end = math.max(ceil((month_end - now) / 1000), 1)
    local retry, reset = 0, 0
    if month_used + cost > month_limit then
      allowed = 0
      retry = until_end
    end
    if month_used > 0 then reset = until_end end
    out[n + 1], out[n + 2], out[n + 3], out[n + 4], out[n + 5] = month_used, reset, retry, until_end, 1
  else
    out[n + 1], out[n + 2], out[n + 3], out[n + 4], out[n + 5] = 0, 0, 0, 0, 0
  end
  n = n + 5
  out[at_allowed] = allowed
  if allowed == 1 then count(cost) end
end

-- The lease: at most a quarter of what every window has left (so several nodes' leases
-- together never strand much of a limit), and only while the minute bucket lasts (none in
-- its last 100 ms).
local ask = tonumber(ARGV[10])
if ask > 0 then
  local granted = ask
  for w = 1, 3 do
    local base = (w - 1) * stride
    granted = math.min(granted, floor((limits[w] - s[base + 2]) / 4))
  end
  if has_month then granted = math.min(granted, floor((month_limit - month_used) / 4)) end
  local lease_ms = math.min((current[1] + 1) * buckets[1], month_end) - now
  -- Too close to the bucket's end to be used: none (the node asks again in the next one).
  if lease_ms < 100 then granted = 0 end
  granted = math.max(granted, 0)
  if granted > 0 then count(granted) end
  out[n + 1], out[n + 2], out[n + 3] = granted, lease_ms, current[1] * buckets[1]
  n = n + 3
  for w = 1, 3 do
    local base, bucket_ms = (w - 1) * stride, buckets[w]
    local reset = 0
    if first[w] then reset = (current[w] + first[w]) * bucket_ms - now end
    out[n + 1], out[n + 2] = s[base + 2], reset
    n = n + 2
  end
  out[n + 1], out[n + 2] = month_used, month_end - now
  n = n + 2
end

if added > 0 then
  s[3 * stride + 1], s[3 * stride + 2] = month_id, month_used
end
if added > 0 or changed then
  -- Live while any window can still count something: a day and a bucket, or the month.
  local ttl = 86400000 + 7200000
  if has_month then ttl = math.max(ttl, month_end + 86400000 - now) end
  redis.call('SET', key, struct.pack(format, unpack(s, 1, size)), 'PX', ttl)
end
n = n + 1
out[n] = now
return struct.pack('<' .. string.rep('d', n), unpack(out, 1, n))
