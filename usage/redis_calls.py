"""The Redis calls every API request makes: the rate limiter's script and the usage event's push.
Free of models, so that the benchmark's baseline C (which loads no Django app) makes the same calls."""

import os
import threading
import weakref
from typing import Any

import redis
from redis.connection import AbstractConnection, ConnectionPool

_held = threading.local()


def redis_call(client: redis.Redis, *args: Any) -> Any:
    """One command on this thread's own connection to the client's server, without the client's
    per-command layers (a retry helper, observability hooks: 15-18 µs of CPU a call) or the pool's
    checkout (a lock and its bookkeeping: about 20 µs a call). No retry: the callers fall back at once
    (the limiter lets the request through, the usage event goes to the database). A connection that
    failed midway may hold half a reply and is dropped; after an error reply, read whole, it is kept."""
    connection = _connection(client.connection_pool)
    try:
        connection.send_command(*args)
        return connection.read_response()
    except redis.ResponseError:
        raise
    except BaseException:
        connection.disconnect()
        raise


def _connection(pool: ConnectionPool) -> AbstractConnection:
    """This thread's connection of the pool's kind, made on first use (again in a forked child, which
    must not write on its parent's socket), and ready to send: one the server closed, or that holds
    unread data, is reconnected first, as the pool does at checkout."""
    held: weakref.WeakKeyDictionary | None = getattr(_held, "connections", None)
    if held is None:
        held = _held.connections = weakref.WeakKeyDictionary()
    connection = held.get(pool)
    if connection is None or connection.pid != os.getpid():
        # Not the pool's make_connection: that counts against its limit, and these are not returned.
        connection = held[pool] = pool.connection_class(**pool.connection_kwargs)
    connection.connect()  # no-op when connected; a failure to connect is the caller's to handle
    try:
        if connection.can_read():
            connection.disconnect()
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        connection.disconnect()
    return connection


# KEYS[1]: the tenant's bucket hash. ARGV: now, the credentials generation the caller expects ('' for
# none), the seconds the hash lives after its last use, then capacity and period of each window.
# The hash also holds the tenant's credentials generation (field g), replaced whenever a key or the
# tenant changes: a process that remembers a key confirms it here, in the same round trip, and a
# mismatch answers {-1} before any token is taken.
# It holds the tenant's change marks too (fields c and m), replaced whenever its catalog or its model
# changes, and created here when missing: what a process keeps of either is good while its mark stands.
# Every bucket is refilled for the time passed; the request takes one token from each bucket
# only if every bucket has one, so a refused request takes nothing. Each bucket keeps the capacity it
# was filled to (field k): a limit raised or lowered since moves its tokens by the difference.
BUCKETS_SCRIPT = """
local now = tonumber(ARGV[1])
if ARGV[2] ~= '' and redis.call('HGET', KEYS[1], 'g') ~= ARGV[2] then
  return {-1}
end
local marks = redis.call('HMGET', KEYS[1], 'c', 'm')
if not marks[1] or not marks[2] then
  local clock = redis.call('TIME')
  local fresh = 't' .. clock[1] .. '.' .. clock[2]
  for i, name in ipairs({'c', 'm'}) do
    if not marks[i] then
      marks[i] = fresh
      redis.call('HSET', KEYS[1], name, fresh)
    end
  end
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
local windows = (#ARGV - 3) / 2
if windows == 0 then return {1, 0, '0', marks[1], marks[2]} end
local fields = {}
for i = 1, windows do
  fields[#fields + 1] = 't' .. i
  fields[#fields + 1] = 's' .. i
  fields[#fields + 1] = 'k' .. i
end
local state = redis.call('HMGET', KEYS[1], unpack(fields))
local tokens = {}
local now_of = {}
local allowed = 1
local refused = 0
local wait = 0
for i = 1, windows do
  local capacity = tonumber(ARGV[2 * i + 2])
  local period = tonumber(ARGV[2 * i + 3])
  local rate = capacity / period
  local t = tonumber(state[3 * i - 2])
  local since = tonumber(state[3 * i - 1])
  local held = tonumber(state[3 * i]) or capacity
  if t == nil or since == nil then
    t = capacity
    since = now
    held = capacity
  end
  -- A process whose clock reading is older than the bucket's refills nothing and does not move the
  -- bucket back in time (else the next caller would be credited the same seconds again).
  if since > now then now_of[i] = since else now_of[i] = now end
  -- Refilled at the limit it was filled under; a limit changed since applies from now, what the
  -- window has used staying used.
  t = math.min(held, t + (now_of[i] - since) * held / period)
  if held ~= capacity then t = math.max(0, math.min(capacity, t + capacity - held)) end
  tokens[i] = t
  if t < 1 then
    allowed = 0
    local needed = (1 - t) / rate
    if needed > wait then
      wait = needed
      refused = i
    end
  end
end
local update = {}
for i = 1, windows do
  if allowed == 1 then tokens[i] = tokens[i] - 1 end
  update[#update + 1] = 't' .. i
  update[#update + 1] = string.format('%.6f', tokens[i])
  update[#update + 1] = 's' .. i
  update[#update + 1] = string.format('%.6f', now_of[i])
  update[#update + 1] = 'k' .. i
  update[#update + 1] = ARGV[2 * i + 2]
end
redis.call('HSET', KEYS[1], unpack(update))
redis.call('EXPIRE', KEYS[1], ARGV[3])
local result = {allowed, refused, string.format('%.6f', wait), marks[1], marks[2]}
for i = 1, windows do result[#result + 1] = string.format('%.6f', tokens[i]) end
return result
"""
