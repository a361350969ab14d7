-- wrk script for benchmarks/nearby.py: GET /api/field/nearby at the positions listed in $POINTS (one query
-- string per line), with the bearer token in $TOKEN; prints one JSON line of figures when done.
local points = {}
for line in io.lines(os.getenv("POINTS")) do points[#points + 1] = line end
local token = os.getenv("TOKEN")
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("offset", counter * 997)
end

function init(args)
  i = offset or 0
end

function request()
  i = i % #points + 1
  return wrk.format("GET", "/api/field/nearby?" .. points[i], {["Authorization"] = "Bearer " .. token})
end

function done(summary, latency, requests)
  local errors = summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write
             + summary.errors.timeout
  io.write(string.format('{"requests": %d, "seconds": %.3f, "errors": %d, "p50_ms": %.2f, "p95_ms": %.2f, '
    .. '"p99_ms": %.2f, "max_ms": %.2f}\n', summary.requests, summary.duration / 1e6, errors,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000))
end
