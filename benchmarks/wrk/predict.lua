-- wrk script: a live stream of predicts, each one second after the one before, so that
-- every request is news the series learns from (the service's live path: score, update
-- the rolling context, queue the point for saving). The first timestamp is the script's
-- argument (`wrk ... -- 1800000000`): each run must start after the last one ended; a
-- second argument is an API key, sent as `Authorization: Bearer KEY`.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local timestamp = 1800000000

init = function(args)
  if args[1] then timestamp = tonumber(args[1]) end
  if args[2] then wrk.headers["Authorization"] = "Bearer " .. args[2] end
end

request = function()
  timestamp = timestamp + 1
  local body = string.format('{"timestamp": %d, "value": %d.5}', timestamp, 90 + timestamp % 21)
  return wrk.format(nil, nil, nil, body)
end
