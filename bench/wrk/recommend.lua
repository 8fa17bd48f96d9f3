-- POST /api/v1/recommendations for a random known user.
wrk.headers["Authorization"] = os.getenv("BENCH_AUTH")
wrk.headers["Content-Type"] = "application/json"
local users = tonumber(os.getenv("BENCH_USERS") or "4000")
math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 1000)
request = function()
  local body = '{"user_id": "user-' .. math.random(0, users - 1) .. '", "count": 10}'
  return wrk.format("POST", "/api/v1/recommendations", nil, body)
end
