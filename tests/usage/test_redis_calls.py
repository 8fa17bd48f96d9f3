"""The bare Redis call of the request path: the reply, or an error, on a connection of the calling
thread's own that is left clean either way."""

import threading

import pytest
import redis
from django.conf import settings

from usage.redis_calls import _connection, redis_call

pytestmark = pytest.mark.redis


@pytest.fixture
def client():
    client = redis.Redis.from_url(settings.TEST_REDIS_URL, socket_timeout=0.2)
    yield client
    client.delete("redis-calls:list", "redis-calls:string")
    _connection(client.connection_pool).disconnect()
    client.connection_pool.disconnect()


def held(client: redis.Redis):
    return _connection(client.connection_pool)


def test_a_reply_comes_back_on_the_threads_own_connection(client):
    assert redis_call(client, "RPUSH", "redis-calls:list", "a") == 1
    connection = held(client)
    assert redis_call(client, "RPUSH", "redis-calls:list", "b") == 2
    assert client.lrange("redis-calls:list", 0, -1) == [b"a", b"b"]
    assert held(client) is connection and connection.is_connected
    assert len(client.connection_pool._in_use_connections) == 0  # the pool lends nothing for it


def test_an_error_reply_is_raised_and_the_connection_kept(client):
    client.set("redis-calls:string", "x")
    redis_call(client, "PING")
    connection = held(client)
    socket = connection._sock
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        redis_call(client, "RPUSH", "redis-calls:string", "a")
    assert held(client)._sock is socket
    assert redis_call(client, "GET", "redis-calls:string") == b"x"  # its next reply is its own


def test_a_connection_that_failed_midway_is_dropped(client):
    redis_call(client, "PING")
    socket = held(client)._sock
    with pytest.raises(redis.TimeoutError):
        redis_call(client, "BLPOP", "redis-calls:empty", 1)  # no answer within the socket timeout
    assert held(client)._sock is not socket  # BLPOP's late reply can never be read as another's
    assert redis_call(client, "PING") == b"PONG"  # the raw reply: no response callbacks


def test_a_connection_the_server_closed_is_replaced_before_the_command(client):
    assert redis_call(client, "CLIENT", "SETNAME", "redis-calls-victim") == b"OK"
    victim = next(c for c in client.client_list() if c["name"] == "redis-calls-victim")
    client.client_kill_filter(_id=victim["id"])
    assert redis_call(client, "RPUSH", "redis-calls:list", "a") == 1  # not lost to the dead socket


def test_each_thread_and_each_process_has_its_own(client):
    mine = held(client)
    theirs = []
    thread = threading.Thread(target=lambda: theirs.append(held(client)))
    thread.start()
    thread.join()
    assert theirs[0] is not mine
    mine.pid -= 1  # as a forked child sees its parent's connection
    assert held(client) is not mine
    assert redis_call(client, "PING") == b"PONG"
