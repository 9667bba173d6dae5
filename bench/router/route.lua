-- wrk script for POST /v1/route: a unique message id per request, a realistic type mix, and an optional
-- fixed request rate (open-loop pacing shared by the thread's connections).
--
-- Environment (read by every thread):
--   BENCH_RATE      total requests per second across all threads; 0 or unset = as fast as possible
--   BENCH_THREADS   wrk's -t value (the rate is split between threads)
--   BENCH_PATH      request path (default /v1/route); BENCH_STATIC=1 sends GET instead (nginx static reference)
--   BENCH_OUT       file the summary JSON is written to (by the main state, in done())
local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clk_id, bench_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local ts = ffi.new("bench_timespec")

local function now_ms()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
  table.insert(threads, thread)
end

local types = { "telemetry", "telemetry", "telemetry", "telemetry", "status", "status", "report", "heartbeat",
  "alert", "command" }
local sources = { "sensor-gateway", "ops-console", "billing", "fleet-tracker", "scheduler" }
local seq = 0
local interval_ms = 0
local next_slot = nil
local path = os.getenv("BENCH_PATH") or "/v1/route"
local static = os.getenv("BENCH_STATIC") == "1"
local run = tostring(os.time())

function init(args)
  local rate = tonumber(os.getenv("BENCH_RATE") or "0") or 0
  local nthreads = tonumber(os.getenv("BENCH_THREADS") or "1") or 1
  if rate > 0 then
    interval_ms = 1000.0 * nthreads / rate
  end
  math.randomseed(tid * 7919)
end

function delay()
  if interval_ms <= 0 then
    return 0
  end
  local now = now_ms()
  if next_slot == nil or next_slot < now - 1000 then
    next_slot = now -- start, or fell more than a second behind: do not burst to catch up
  end
  local wait = next_slot - now
  next_slot = next_slot + interval_ms
  if wait < 0 then
    return 0
  end
  return wait
end

function request()
  if static then
    return wrk.format("GET", path)
  end
  seq = seq + 1
  local body = string.format(
    '{"id":"bench-%s-%d-%d","source":"%s","type":"%s","ttl_ms":30000,"payload":{"seq":%d,"value":%.3f,"unit":"pct"}}',
    run, tid, seq, sources[math.random(#sources)], types[math.random(#types)], seq, math.random() * 100)
  return wrk.format("POST", path, { ["Content-Type"] = "application/json" }, body)
end

function done(summary, latency, requests)
  local out = os.getenv("BENCH_OUT")
  if out == nil then
    return
  end
  local f = io.open(out, "w")
  local e = summary.errors
  f:write(string.format(
    '{"requests":%d,"duration_us":%d,"bytes":%d,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p90":%d,"p95":%d,"p99":%d,"max":%d,"mean":%.1f}}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(95), latency:percentile(99), latency.max,
    latency.mean))
  f:close()
end
