-- GET /api/v1/items/{id} of a random item of the 10,000.
wrk.headers["Authorization"] = os.getenv("BENCH_AUTH")
local items = tonumber(os.getenv("BENCH_ITEMS") or "10000")
math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 1000)
request = function()
  return wrk.format("GET", "/api/v1/items/item-" .. math.random(0, items - 1))
end
