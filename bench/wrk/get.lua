-- GET of a fixed path (baselines) with optional headers from the environment.
local auth = os.getenv("BENCH_AUTH")
if auth then wrk.headers["Authorization"] = auth end
