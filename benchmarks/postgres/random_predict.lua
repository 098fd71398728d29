-- wrk script: POST predict.lua's body to a series drawn at random per request.
-- Arguments after `--`: how many series (ids s0000000, s0000001, ...) and an optional
-- query, e.g. `-- 100000 ?version=3`. With a count of 1 every request goes to s0000000,
-- so the one-series baseline pays the same client-side cost as the random runs.
local count, query = 1, ""
local body = '{"timestamp": 1691001000, "value": 150.5}'
local headers = { ["Content-Type"] = "application/json" }

function init(args)
  count = tonumber(args[1]) or 1
  query = args[2] or ""
  math.randomseed(os.time())
end

function request()
  local path = string.format("/predict/s%07d%s", math.random(0, count - 1), query)
  return wrk.format("POST", path, headers, body)
end
