-- wrk script: replay pre-signed deliveries, one disjoint slice of the file per thread.
--
--   wrk -t2 -c64 -d30s -s scripts/bench/deliveries.lua http://127.0.0.1:8000/v1/hooks/bench -- FILE 2
--
-- The arguments after "--" are the deliveries file and wrk's thread count (-t).
-- FILE comes from gen_deliveries.py (id, timestamp, signature, body; tab-separated).
-- A thread stops when its slice is used up, so no delivery is sent twice.
-- done() prints one line per response status ("status 200 12345") and a latency
-- line, which bench_ingest.py parses.

local threads = {}
local thread_count = 0

function setup(thread)
  thread:set("thread_index", thread_count)
  thread_count = thread_count + 1
  table.insert(threads, thread)
end

function init(args)
  local path = args[1]
  local total_threads = tonumber(args[2] or "1")
  requests = {}
  position = 0
  statuses = {}
  local line_number = 0
  for line in io.lines(path) do
    if line_number % total_threads == thread_index then
      local id, timestamp, signature, body = line:match("^([^\t]+)\t([^\t]+)\t([^\t]+)\t(.*)$")
      requests[#requests + 1] = wrk.format("POST", nil, {
        ["Content-Type"] = "application/json",
        ["webhook-id"] = id,
        ["webhook-timestamp"] = timestamp,
        ["webhook-signature"] = signature,
      }, body)
    end
    line_number = line_number + 1
  end
end

function request()
  position = position + 1
  if position > #requests then
    wrk.thread:stop()
    position = #requests
  end
  return requests[position]
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests_summary)
  local totals = {}
  for _, thread in ipairs(threads) do
    local counts = thread:get("statuses")
    for status, count in pairs(counts) do
      totals[status] = (totals[status] or 0) + count
    end
  end
  for status, count in pairs(totals) do
    io.write(string.format("status %d %d\n", status, count))
  end
  io.write(string.format("errors connect=%d read=%d write=%d timeout=%d\n",
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout))
  io.write(string.format("latency_ms p50=%.2f p90=%.2f p99=%.2f p999=%.2f max=%.2f\n",
    latency:percentile(50) / 1e3, latency:percentile(90) / 1e3, latency:percentile(99) / 1e3,
    latency:percentile(99.9) / 1e3, latency.max / 1e3))
end
