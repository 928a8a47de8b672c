-- wrk script for benchmarks/webhook.py: cycles through pre-signed Twilio webhook requests.
--
--   wrk -t1 -c16 -d15s --latency -s benchmarks/webhook.lua http://127.0.0.1:PORT -- requests.tsv 1
--
-- requests.tsv holds one request a line: "<X-Twilio-Signature>\t<form-encoded body>", in the order
-- they must be sent (each resident's turns in conversation order, every MessageSid new). With N wrk
-- threads, thread k sends lines k, k+N, k+2N, ... so no line is sent twice until the file runs out;
-- `done` reports how many were (repeats), with the non-2xx count and the latency percentiles as JSON.

local threads = {}

function setup(thread)
   thread:set("id", #threads)
   table.insert(threads, thread)
end

function init(args)
   local path, nthreads = args[1], tonumber(args[2] or "1")
   local headers = {["Content-Type"] = "application/x-www-form-urlencoded"}
   reqs, line_no = {}, 0
   for line in io.lines(path) do
      if line_no % nthreads == id then
         local tab = line:find("\t", 1, true)
         headers["X-Twilio-Signature"] = line:sub(1, tab - 1)
         reqs[#reqs + 1] = wrk.format("POST", "/sms", headers, line:sub(tab + 1))
      end
      line_no = line_no + 1
   end
   n, issued, non2xx, first_bad = #reqs, 0, 0, ""
end

function request()
   issued = issued + 1
   return reqs[(issued - 1) % n + 1]
end

function response(status, headers, body)
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
      if first_bad == "" then first_bad = status .. " " .. string.sub(body or "", 1, 200) end
   end
end

function done(summary, latency, requests)
   local repeats, non2xx_total, bad = 0, 0, ""
   for _, thread in ipairs(threads) do
      local sent, size = thread:get("issued"), thread:get("n")
      if sent > size then repeats = repeats + sent - size end
      non2xx_total = non2xx_total + thread:get("non2xx")
      if bad == "" then bad = thread:get("first_bad") end
   end
   local e = summary.errors
   io.write(string.format(
      'WRK_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, ' ..
      '"max_us": %d, "non2xx": %d, "socket_errors": %d, "timeouts": %d, "repeats": %d, "first_bad": "%s"}\n',
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency.max, non2xx_total, e.connect + e.read + e.write, e.timeout,
      repeats, (bad:gsub('[%c"\\]', ' '))))
end
