-- wrk script: GET with X-API-Key cycling through mem-bench-key-1 .. mem-bench-key-$KEYS (one
-- Lua state per wrk thread: run with -t1 so every key is used in turn); the LOADJSON summary
-- is ping.lua's. With PACE_MS set, each connection waits that many milliseconds after an answer
-- before its next call, so connections x 1000 / PACE_MS bounds the rate (memory.sh's RATE).
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "ping.lua")

local keys = tonumber(os.getenv("KEYS") or "100000")
local n = 0

request = function()
  n = n % keys + 1
  return wrk.format("GET", nil, { ["X-API-Key"] = "mem-bench-key-" .. n })
end

local pace = tonumber(os.getenv("PACE_MS") or "")
if pace then
  delay = function() return pace end
end
