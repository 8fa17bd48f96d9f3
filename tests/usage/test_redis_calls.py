"""The bare Redis call of the request path: the reply, or an error, and a pool left clean either way."""

import pytest
import redis
from django.conf import settings

from usage.redis_calls import redis_call

pytestmark = pytest.mark.redis


@pytest.fixture
def client():
    client = redis.Redis.from_url(settings.TEST_REDIS_URL, socket_timeout=0.2)
    yield client
    client.delete("redis-calls:list", "redis-calls:string")
    client.connection_pool.disconnect()


def connections(client: redis.Redis) -> tuple[int, list[bool]]:
    """Connections in use, and whether each available one is connected."""
    pool = client.connection_pool
    return len(pool._in_use_connections), [c._sock is not None for c in pool._available_connections]


def test_a_reply_comes_back_and_so_does_the_connection(client):
    assert redis_call(client, "RPUSH", "redis-calls:list", "a") == 1
    assert redis_call(client, "RPUSH", "redis-calls:list", "b") == 2
    assert client.lrange("redis-calls:list", 0, -1) == [b"a", b"b"]
    assert connections(client) == (0, [True])


def test_an_error_reply_is_raised_and_the_connection_kept(client):
    client.set("redis-calls:string", "x")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        redis_call(client, "RPUSH", "redis-calls:string", "a")
    assert connections(client) == (0, [True])
    assert redis_call(client, "GET", "redis-calls:string") == b"x"  # its next reply is its own


def test_a_connection_that_failed_midway_is_dropped(client):
    with pytest.raises(redis.TimeoutError):
        redis_call(client, "BLPOP", "redis-calls:empty", 1)  # no answer within the socket timeout
    assert connections(client) == (0, [False])  # BLPOP's late reply can never be read as another's
    assert redis_call(client, "PING") == b"PONG"  # the raw reply: no response callbacks
    assert connections(client) == (0, [True])
