-- wrk script: GET with X-API-Key cycling through mem-bench-key-1 .. mem-bench-key-$KEYS (one
-- Lua state per wrk thread: run with -t1 so every key is used in turn); prints one LOADJSON
-- line like ping.lua.
local keys = tonumber(os.getenv("KEYS") or "100000")
local n = 0

request = function()
  n = n % keys + 1
  return wrk.format("GET", nil, { ["X-API-Key"] = "mem-bench-key-" .. n })
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'LOADJSON {"requests":%d,"rps":%.1f,"p50_us":%d,"p99_us":%d,"non2xx":%d,"errors":%d}\n',
    summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99), e.status,
    e.connect + e.read + e.write + e.timeout))
end
