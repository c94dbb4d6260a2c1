-- wrk script: GET /api/v1/recommendations for rotating (bearer token, location) pairs.
-- Usage: wrk -s recommendations.lua http://127.0.0.1:PORT -- REQUESTS_FILE
-- REQUESTS_FILE has one "token lat lng" line per request (planwise bench api writes it).
-- Prints one JSON line at the end: requests, duration, errors, latency percentiles (us).

local requests = {}
local position = 0
local threads = {}
local next_offset = 0

function setup(thread)
  -- Threads start at different places in the rotation.
  thread:set("offset", next_offset)
  next_offset = next_offset + 7919
  table.insert(threads, thread)
end

function init(args)
  local path = args[1]
  if path == nil then
    error("pass the requests file: wrk ... -- REQUESTS_FILE")
  end
  for line in io.lines(path) do
    local token, lat, lng = line:match("^(%S+)%s+(%S+)%s+(%S+)$")
    if token then
      requests[#requests + 1] = {
        "/api/v1/recommendations?lat=" .. lat .. "&lng=" .. lng,
        "Bearer " .. token,
      }
    end
  end
  if #requests == 0 then
    error("no requests in " .. path)
  end
  position = (offset or 0) % #requests
end

function request()
  position = position % #requests + 1
  local item = requests[position]
  return wrk.format("GET", item[1], { ["Authorization"] = item[2] })
end

function done(summary, latency, requests_)
  local errors = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "bytes": %d, "errors_connect": %d, '
      .. '"errors_read": %d, "errors_write": %d, "errors_status": %d, "errors_timeout": %d, '
      .. '"p50_us": %d, "p90_us": %d, "p99_us": %d, "mean_us": %.1f, "max_us": %d}\n',
    summary.requests, summary.duration, summary.bytes, errors.connect, errors.read,
    errors.write, errors.status, errors.timeout, latency:percentile(50),
    latency:percentile(90), latency:percentile(99), latency.mean, latency.max
  ))
end
