-- POST /api/v1/interactions: a batch of 10 interactions of random users with random items.
wrk.headers["Authorization"] = os.getenv("BENCH_AUTH")
wrk.headers["Content-Type"] = "application/json"
local users = tonumber(os.getenv("BENCH_USERS") or "4000")
local items = tonumber(os.getenv("BENCH_ITEMS") or "10000")
local types = {"view", "click", "like", "add_to_cart", "purchase"}
math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 1000)
request = function()
  local parts = {}
  for i = 1, 10 do
    parts[i] = string.format('{"user_id": "user-%d", "item_id": "item-%d", "type": "%s"}',
      math.random(0, users - 1), math.random(0, items - 1), types[math.random(1, #types)])
  end
  return wrk.format("POST", "/api/v1/interactions", nil, '{"interactions": [' .. table.concat(parts, ",") .. ']}')
end
