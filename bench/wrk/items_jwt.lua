-- GET /api/v1/items (first page of 20) with a user's JWT.
wrk.headers["Authorization"] = os.getenv("BENCH_AUTH")
request = function()
  return wrk.format("GET", "/api/v1/items?limit=20")
end
