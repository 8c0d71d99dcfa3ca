"""core.cache: one Redis pool per process, and a cache that degrades to a
miss when Redis is away instead of failing the request."""

import os
import socket
import threading

import pytest

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


def test_cache_objects_share_one_client_per_pool_and_it_serves_threads():
    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.skip("needs Redis (REDIS_URL)")
    first = SharedPoolRedisCache(url, {})
    second = SharedPoolRedisCache(url, {})
    assert first._cache.get_client(write=True) is second._cache.get_client(write=False)
    other_server = SharedPoolRedisCache(f"redis://127.0.0.1:{_closed_port()}/0", {})
    assert other_server._cache.get_client() is not first._cache.get_client()
    errors = []

    def work(n: int) -> None:
        try:
            for i in range(50):
                first.set(f"core-cache-test:{n}:{i}", i)
                assert second.get(f"core-cache-test:{n}:{i}") == i
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    first.delete_many([f"core-cache-test:{n}:{i}" for n in range(8) for i in range(50)])
    assert errors == []
