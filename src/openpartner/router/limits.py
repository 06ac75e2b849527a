"""The hard per-IP cap: at most ``limit`` requests per client per fixed window, then 429.

Per process by default (a dict of counters, cleared every window). With ``REDIS_URL`` the count is
shared by every router process through Redis (``INCR`` + ``EXPIRE``, one round trip); if Redis
fails the router falls back to its own counters rather than refusing or stalling traffic.
Counters are keyed by the keyed IP hash, so Redis never holds a raw address.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)


class LocalLimiter:
    def __init__(self, limit: int, window: int) -> None:
        self.limit = limit
        self.window = window
        self._current = 0
        self._counts: dict[str, int] = {}

    def hit(self, key: str) -> int:
        """0 when allowed, else the seconds until the window ends (for ``Retry-After``)."""
        now = time.time()
        window = int(now // self.window)
        if window != self._current:
            # Memory stays bounded by the clients of one window.
            self._current = window
            self._counts = {}
        count = self._counts.get(key, 0) + 1
        self._counts[key] = count
        if count <= self.limit:
            return 0
        return max(1, int((window + 1) * self.window - now + 0.999))


class RedisLimiter:
    def __init__(self, url: str, limit: int, window: int) -> None:
        # Imported only when configured: it adds a second to every router start.
        import redis.asyncio
        from redis.exceptions import RedisError

        self.errors = (RedisError, OSError)
        self.limit = limit
        self.window = window
        self.client: Redis = redis.asyncio.Redis.from_url(
            url, socket_timeout=0.25, socket_connect_timeout=0.25
        )
        self.fallback = LocalLimiter(limit, window)
        self._warned = 0.0

    async def hit(self, key: str) -> int:
        now = time.time()
        window = int(now // self.window)
        name = f"openpartner:ratelimit:{window}:{key}"
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.incr(name)
                pipe.expire(name, self.window + 1)
                count, _ = await pipe.execute()
        except self.errors as exc:
            if now - self._warned > 60:
                log.warning("redis unavailable (%s); per-IP cap is per process meanwhile", exc)
                self._warned = now
            return self.fallback.hit(key)
        if int(count) <= self.limit:
            return 0
        return max(1, int((window + 1) * self.window - now + 0.999))

    async def close(self) -> None:
        await self.client.aclose()
