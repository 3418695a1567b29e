-- Shared by the wrk scripts of benchmarks/oidc: per-thread counters, and one
-- machine-readable line ("BENCH {json}") printed by done() for run.sh to collect.
-- Loaded with dofile() from each script; wrk runs one Lua state per thread.

local threads = {}
counts = { ok = 0, bad_status = 0, bad_body = 0, starved = 0 }
first_bad = ""

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

-- Every response is checked: a non-2xx status, or a 2xx whose body lacks what a real
-- success carries (expect: a Lua pattern), is counted and never hidden.
function check(status, body, expect)
  if status < 200 or status > 299 then
    counts.bad_status = counts.bad_status + 1
    if first_bad == "" then first_bad = tostring(status) .. " " .. string.sub(body or "", 1, 200) end
    return false
  end
  if expect ~= nil and expect ~= "" and not string.find(body or "", expect) then
    counts.bad_body = counts.bad_body + 1
    if first_bad == "" then first_bad = tostring(status) .. " " .. string.sub(body or "", 1, 200) end
    return false
  end
  counts.ok = counts.ok + 1
  return true
end

local function esc(s)
  return (string.gsub(s, '[%c"\\]', function(c) return string.format("\\u%04x", string.byte(c)) end))
end

function done(summary, latency, requests)
  local ok, bad_status, bad_body, starved, bad = 0, 0, 0, 0, ""
  for _, t in ipairs(threads) do
    local c = t:get("counts")
    ok = ok + c.ok
    bad_status = bad_status + c.bad_status
    bad_body = bad_body + c.bad_body
    starved = starved + c.starved
    local fb = t:get("first_bad")
    if bad == "" and fb ~= nil then bad = fb end
  end
  local seconds = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"seconds":%.3f,"rps":%.1f,"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,'
      .. '"max_ms":%.3f,"ok":%d,"bad_status":%d,"bad_body":%d,"starved":%d,'
      .. '"socket_errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d},"first_bad":"%s"}\n',
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, ok, bad_status, bad_body, starved,
    e.connect, e.read, e.write, e.timeout, esc(bad)))
end
