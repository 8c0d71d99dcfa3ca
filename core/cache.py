"""Django's Redis cache with one connection pool per process.

Django keeps a cache object per request context, and its Redis client keeps
its pools on that object: under ASGI every request built a new pool and
opened a new TCP connection to Redis for its first cache read (py-spy on the
intake benchmark: ~5 % of the worker's time in ``connect``). Here the pools
live at module level, one per server, shared by every cache object of the
process (redis-py pools are thread-safe and reset themselves after a fork),
and so does one ``redis.Redis`` per pool: Django built a new one for every
cache operation, and each builds redis-py's table of some hundred response
callbacks (a third of a cache read's CPU).
"""

from __future__ import annotations

import threading

from django.core.cache.backends.redis import RedisCache, RedisCacheClient

_POOLS: dict[tuple[str, tuple], object] = {}
_CLIENTS: dict[int, object] = {}
_LOCK = threading.Lock()


class SharedPoolClient(RedisCacheClient):
    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        client = _CLIENTS.get(id(pool))
        if client is None:
            with _LOCK:
                client = _CLIENTS.setdefault(id(pool), self._client(connection_pool=pool))
        return client

    def _get_connection_pool(self, write):
        server = self._servers[self._get_connection_pool_index(write)]
        key = (server, tuple(sorted((k, repr(v)) for k, v in self._pool_options.items())))
        pool = _POOLS.get(key)
        if pool is None:
            with _LOCK:
                pool = _POOLS.get(key)
                if pool is None:
                    pool = _POOLS[key] = self._pool_class.from_url(server, **self._pool_options)
        return pool


class SharedPoolRedisCache(RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = SharedPoolClient


class _Degraded:
    """Redis away: the cache is an optimisation here (roles, routing rules,
    throttles), so a read is a miss and a write is skipped, logged once a
    minute, instead of a 500 for every request until Redis is back."""

    last_warning = 0.0

    @classmethod
    def note(cls, operation: str, error: Exception) -> None:
        import logging
        import time

        now = time.monotonic()
        if now - cls.last_warning > 60:
            cls.last_warning = now
            logging.getLogger(__name__).warning("cache %s failed, served without it: %s: %s", operation,
                                                type(error).__name__, error)


def _tolerant(name: str, fallback):
    def method(self, *args, **kwargs):
        try:
            return getattr(super(SharedPoolClient, self), name)(*args, **kwargs)
        except (self._lib.ConnectionError, self._lib.TimeoutError) as error:
            _Degraded.note(name, error)
            return fallback(*args, **kwargs) if callable(fallback) else fallback

    method.__name__ = name
    return method


def _default_of_get(key, default=None):
    return default


for _name, _fallback in (("get", _default_of_get), ("get_many", lambda *a, **k: {}), ("has_key", False),
                         ("set", None), ("add", False), ("touch", False), ("delete", False),
                         ("set_many", lambda *a, **k: []), ("delete_many", None)):
    setattr(SharedPoolClient, _name, _tolerant(_name, _fallback))
