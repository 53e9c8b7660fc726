-- wrk script: a static GET with X-API-Key from $BENCH_API_KEY; prints one LOADJSON line.
wrk.method = "GET"
wrk.headers["X-API-Key"] = os.getenv("BENCH_API_KEY") or "none"

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'LOADJSON {"requests":%d,"rps":%.1f,"p50_us":%d,"p99_us":%d,"non2xx":%d,"errors":%d}\n',
    summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99), e.status,
    e.connect + e.read + e.write + e.timeout))
end
