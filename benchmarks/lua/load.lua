-- wrk script shared by every load of the benchmark harness.
--
--   wrk ... -s load.lua -- METHOD REQUESTS_FILE [HEADER ...]
--
-- REQUESTS_FILE has one request per line, "PATH" or "PATH<TAB>BODY"; each wrk thread walks the
-- list round-robin from its own starting point, so a load over 1 000 keys touches all of them.
-- HEADER arguments are "Name: value". Every response's status is counted (wrk itself counts
-- only >= 400 as errors), and done() prints one line "WRK_JSON {...}" that the harness parses.

local threads = {}
local counter = 0

function setup(thread)
   table.insert(threads, thread)
   thread:set("thread_number", #threads)
end

function init(args)
   local method = args[1]
   local headers = {}
   for i = 3, #args do
      local name, value = args[i]:match("^([^:]+):%s*(.*)$")
      headers[name] = value
   end
   prepared = {}
   local file = assert(io.open(args[2], "r"))
   for line in file:lines() do
      local path, body = line:match("^([^\t]*)\t(.*)$")
      if not path then
         path, body = line, nil
      end
      if path ~= "" then
         local own = {}
         for name, value in pairs(headers) do own[name] = value end
         prepared[#prepared + 1] = wrk.format(method, path, own, body)
      end
   end
   file:close()
   -- Spread the threads over the list instead of having them all start at its head.
   counter = math.floor((thread_number - 1) * #prepared / 7) % #prepared
   statuses = {}
end

function request()
   counter = counter % #prepared + 1
   return prepared[counter]
end

function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
   local counts = {}
   for _, thread in ipairs(threads) do
      local seen = thread:get("statuses") or {}
      for status, count in pairs(seen) do
         counts[status] = (counts[status] or 0) + count
      end
   end
   local parts = {}
   for status, count in pairs(counts) do
      parts[#parts + 1] = string.format('"%d": %d', status, count)
   end
   local errors = summary.errors
   io.write(string.format(
      'WRK_JSON {"duration_us": %d, "requests": %d, "bytes": %d, ' ..
      '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
      '"latency_us": {"min": %d, "mean": %.1f, "max": %d, "p50": %d, "p90": %d, "p99": %d, ' ..
      '"p999": %d}, "statuses": {%s}}\n',
      summary.duration, summary.requests, summary.bytes,
      errors.connect, errors.read, errors.write, errors.status, errors.timeout,
      latency.min, latency.mean, latency.max, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency:percentile(99.9), table.concat(parts, ", ")))
end
