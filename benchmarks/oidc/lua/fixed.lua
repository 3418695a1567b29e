-- One fixed request, every response checked.
-- wrk ... -s fixed.lua URL -- METHOD PATH EXPECT [AUTHORIZATION] [BODY]
--   EXPECT: Lua pattern a successful body must contain ("" for none).
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "common.lua")

local expect

function init(args)
  wrk.method = args[1]
  wrk.path = args[2]
  expect = args[3]
  if args[4] ~= nil and args[4] ~= "" then wrk.headers["Authorization"] = args[4] end
  if args[5] ~= nil and args[5] ~= "" then
    wrk.body = args[5]
    wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  end
end

function response(status, headers, body)
  check(status, body, expect)
end
