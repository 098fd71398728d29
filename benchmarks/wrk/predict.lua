-- wrk script: POST one predict body (the same point every time).
wrk.method = "POST"
wrk.body = '{"timestamp": 1691001000, "value": 150.5}'
wrk.headers["Content-Type"] = "application/json"
