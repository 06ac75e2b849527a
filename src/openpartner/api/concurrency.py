"""How many requests an API process takes at once, and how many of them use the database.

Two bounds, both waited for on the event loop, where waiting holds nothing:

- **Database slots** (:class:`DatabaseSlots`). A request holds one slot from before its first
  statement to after its commit (``api/deps.py``), and so do the key lookup, the CORS origins
  reload and each group of the events committer: a slot is what may hold a transaction. What a
  slot holder runs itself (its commit or rollback, the key lookup, the reload, a group) runs in
  threads of the slots' own, one per slot, so it never waits for a thread at all; sync handlers
  run in the default pool, which has more threads than there are slots (:func:`thread_count`).
  Without this, a lock holder whose handler had returned waited for a pool thread to commit
  while every thread was taken by a request waiting for its lock: on PostgreSQL for ever (the
  clicks writers' advisory lock has no timeout), on SQLite until ``busy_timeout`` (10 s) failed
  the waiters with 503. Slots also never exceed the connection pool, so no thread waits for a
  connection.
- **Admission** (:class:`Admission`). At most ``API_MAX_CONCURRENT_REQUESTS`` requests are in a
  process at once, however many arrive; one more is answered ``503 overloaded`` with
  ``Retry-After`` at once rather than queued without bound. ``/health`` is never counted and
  needs no thread, so it answers under any load.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from collections.abc import AsyncIterator, Callable, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from starlette.types import ASGIApp, Receive, Scope, Send

from openpartner.core.errors import ServiceUnavailable
from openpartner.settings import Settings

T = TypeVar("T")
_HOLDS_SLOT = "openpartner.database_slot"
"""Set in a request's ASGI scope while the request holds a slot, so that its later steps (the key
lookup after the session dependency, say) run in that slot instead of waiting for a second one,
which could wait for ever once every slot is held by a request doing the same."""


def slot_count(settings: Settings) -> int:
    """PostgreSQL: one slot per pooled connection. SQLite: one, since every transaction here is a
    writer (``BEGIN IMMEDIATE``) and only one writer runs at a time: more slots only move the
    wait from the event loop into threads that poll the lock (``busy_timeout`` sleeps up to
    100 ms between tries), which made 64 concurrent clicks slower (docs/benchmarks.md)."""
    return 1 if settings.is_sqlite else settings.database_pool_size


def thread_count(settings: Settings) -> int:
    """The default pool, where sync handlers and dependencies run: one thread per slot, and as
    many again for work that holds none (response validation of sync routes, CORS preflights),
    so a slot holder's handler does not wait for a thread behind them."""
    return slot_count(settings) + settings.database_pool_size


@dataclass(slots=True)
class _LoopLimiters:
    slots: anyio.CapacityLimiter
    threads: anyio.CapacityLimiter


class DatabaseSlots:
    def __init__(self, total: int) -> None:
        self.total = total
        # Per event loop (a limiter belongs to one): tests serve one app from several loops.
        self._limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopLimiters] = (
            weakref.WeakKeyDictionary()
        )

    def _loop_limiters(self) -> _LoopLimiters:
        loop = asyncio.get_running_loop()
        limiters = self._limiters.get(loop)
        if limiters is None:
            limiters = self._limiters[loop] = _LoopLimiters(
                anyio.CapacityLimiter(self.total), anyio.CapacityLimiter(self.total)
            )
        return limiters

    async def run_sync(self, func: Callable[[], T]) -> T:
        """Run ``func`` (database work of a slot holder) in a thread of the slots' own: at most
        one per slot, so it never waits behind a handler, whatever the default pool is doing."""
        return await anyio.to_thread.run_sync(func, limiter=self._loop_limiters().threads)

    @asynccontextmanager
    async def hold(self, scope: MutableMapping[str, Any] | None = None) -> AsyncIterator[None]:
        """Hold a slot for the block; within a request (``scope``) that holds one, that one."""
        if scope is not None and scope.get(_HOLDS_SLOT):
            yield
            return
        limiter, borrower = self._loop_limiters().slots, object()
        await limiter.acquire_on_behalf_of(borrower)
        if scope is not None:
            scope[_HOLDS_SLOT] = True
        try:
            yield
        finally:
            if scope is not None:
                scope[_HOLDS_SLOT] = False
            limiter.release_on_behalf_of(borrower)


class Admission:
    """Pure ASGI, outermost: a refused request costs no parsing, no thread, no connection."""

    UNCOUNTED = frozenset({"/health"})

    def __init__(self, app: ASGIApp, max_requests: int) -> None:
        self.app = app
        self.max_requests = max_requests
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.UNCOUNTED:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_requests:
            await _overloaded(scope, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


async def _overloaded(scope: Scope, send: Send) -> None:
    error = ServiceUnavailable(
        "The API is taking as many requests as it can; retry shortly.",
        code="overloaded",
        headers={"Retry-After": "1"},
    )
    body = json.dumps(error.problem(instance=scope.get("path"))).encode()
    await send(
        {
            "type": "http.response.start",
            "status": error.status,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", b"1"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
