"""core.cache: one Redis pool per process, and a cache that degrades to a
miss when Redis is away instead of failing the request."""

import socket

from core.cache import SharedPoolRedisCache


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_redis_away_is_a_miss_not_an_error():
    cache = SharedPoolRedisCache(f"redis://127.0.0.1:{_closed_port()}/0", {})
    assert cache.get("k") is None and cache.get("k", "fallback") == "fallback"
    cache.set("k", 1)
    cache.delete("k")
    assert cache.add("k", 1) is False and cache.has_key("k") is False and cache.get_many(["a", "b"]) == {}


def test_cache_objects_share_one_pool_per_server():
    first = SharedPoolRedisCache("redis://127.0.0.1:6379/9", {})
    second = SharedPoolRedisCache("redis://127.0.0.1:6379/9", {})
    assert first._cache._get_connection_pool(write=True) is second._cache._get_connection_pool(write=True)
