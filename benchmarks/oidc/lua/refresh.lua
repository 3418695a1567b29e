-- refresh_token grant with rotation: every token is presented exactly once.
-- Each thread takes its share of a pool of refresh tokens (one per line in TOKENS, at
-- least 2 per connection); each request takes one from the thread's queue and each
-- successful response puts the rotated token it returns back in, so every connection
-- keeps refreshing a live chain. A failed response loses its chain (counted).
-- wrk ... -s refresh.lua URL -- PATH AUTHORIZATION TOKENS THREADS [EXTRA_BODY]
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "common.lua")

local queue, head, tail = {}, 1, 0
local path, headers, extra

local function push(v) tail = tail + 1; queue[tail] = v end
local function pop()
  if head > tail then return nil end
  local v = queue[head]; queue[head] = nil; head = head + 1
  return v
end

function init(args)
  path = args[1]
  headers = { ["Authorization"] = args[2], ["Content-Type"] = "application/x-www-form-urlencoded" }
  local nthreads = tonumber(args[4])
  extra = args[5] or ""
  local i = 0
  for line in io.lines(args[3]) do
    if line ~= "" then
      if i % nthreads == id - 1 then push(line) end
      i = i + 1
    end
  end
end

function request()
  local token = pop()
  if token == nil then
    counts.starved = counts.starved + 1
    token = "pool-exhausted"
  end
  return wrk.format("POST", path, headers, "grant_type=refresh_token&refresh_token=" .. token .. extra)
end

function response(status, headers, body)
  if check(status, body, '"access_token"') then
    local rotated = string.match(body, '"refresh_token"%s*:%s*"([^"]+)"')
    if rotated then push(rotated) else counts.ok = counts.ok - 1; counts.bad_body = counts.bad_body + 1 end
  end
end
