"""The Redis cache backend, keeping one client per connection pool.

Django's RedisCacheClient builds a new `redis.Redis` for every cache call, and redis-py fills a fresh table of
response callbacks in each constructor (about 170 entries): two cache calls per API request (the throttle's
read and write) cost more Python time than the page's SQL. A `redis.Redis` is safe to share between threads
(each command borrows a connection from the pool), so one per pool is enough; everything else is Django's.
"""

from __future__ import annotations

from typing import Any

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient as DjangoRedisCacheClient


class RedisCacheClient(DjangoRedisCacheClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        django_client: Any = self  # Django's attributes, which its type stubs do not declare
        pool = django_client._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = django_client._client(connection_pool=pool)
        return client


class RedisCache(DjangoRedisCache):
    def __init__(self, server: Any, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = RedisCacheClient
