-- wrk script: like ../shared/bench/post.lua, but every request's user turn is new (a run tag + a
-- counter), so a response cache misses every time. bench/cache_http.sh puts it in place of post.lua.
-- env: BENCH_MODEL (default bench-model), BENCH_STREAM=1 for "stream": true, BENCH_KEY (bearer token),
--      BENCH_HEADERS extra headers "Name: value|Name2: value2"
local model = os.getenv("BENCH_MODEL") or "bench-model"
local stream = os.getenv("BENCH_STREAM") == "1"
local key = os.getenv("BENCH_KEY") or "sk-bench"
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. key
for h in string.gmatch(os.getenv("BENCH_HEADERS") or "", "[^|]+") do
  local name, value = string.match(h, "^%s*([^:]+):%s*(.-)%s*$")
  if name then wrk.headers[name] = value end
end
-- one tag per wrk run (runs of one gateway process must not hit each other's entries)
local f = io.open("/proc/sys/kernel/random/uuid")
local tag = f and f:read("*l") or tostring(os.time())
if f then f:close() end
local n = 0
local head = '{"model":"' .. model .. '","messages":[{"role":"user","content":"Say hello. ' .. tag .. ' '
local tail = '"}],"max_tokens":16' .. (stream and ',"stream":true' or '') .. '}'

function request()
  n = n + 1
  return wrk.format(nil, nil, nil, head .. n .. tail)
end

function done(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    "RESULT requests=%d duration_s=%.3f rps=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f mean_ms=%.3f "
    .. "err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d\n",
    summary.requests, secs, summary.requests / secs,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, latency.mean / 1000,
    e.connect, e.read, e.write, e.status, e.timeout))
end
