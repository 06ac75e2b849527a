"""The click router (no framework) serving ``GET|HEAD /{key}`` and ``/r/{key}``.

A request does no I/O: the link comes from the in-process cache, the click goes into the
recorder's buffer, and the answer is a ``302`` whose ``Location`` is two precompiled strings
around a fresh click id. Everything that touches the database runs on worker threads.

``RouterApp.answer`` is the whole request logic, free of any protocol. Granian serves it through
its native RSGI interface (``__rsgi__``: cheaper per request than ASGI); ``__call__`` is the same
app over ASGI, which the in-process tests drive.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from openpartner.clicks.flags import is_bot
from openpartner.clicks.writer import NO_UTM, ClickRecord, clean_text, utm_fields
from openpartner.core.ids import new_id
from openpartner.core.time import utc_now
from openpartner.db.engine import create_engine
from openpartner.router import snapshot
from openpartner.router.cache import LinkCache, ProgramEntry
from openpartner.router.limits import LocalLimiter, RedisLimiter
from openpartner.router.recorder import Recorder, RouterStats, dumps_stats
from openpartner.router.spool import Spool
from openpartner.router.target import (
    client_ip,
    host_in_domain,
    is_localhost,
    parse_trusted,
    request_host,
)
from openpartner.secrets import keyed_hash, server_secrets
from openpartner.settings import Settings, get_settings

log = logging.getLogger(__name__)

# The ASGI callable's types, spelled out so the router depends on no framework.
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Headers = list[tuple[str, str]]
Response = tuple[int, Headers, bytes]
HeaderGetter = Callable[[str], "str | None"]
# The redirect itself must never be cached (each visit is a new click) and must not hand the
# partner page's full URL to the destination's third parties.
_REDIRECT_HEADERS: Headers = [
    ("cache-control", "no-store"),
    ("referrer-policy", "strict-origin-when-cross-origin"),
    ("content-length", "0"),
]
_ROBOTS = b"User-agent: *\nDisallow: /\n"


def _page(status: int, title: str, *extra: tuple[str, str]) -> Response:
    body = (
        f"<!doctype html><meta charset=utf-8><title>{title}</title>"
        f"<h1>{title}</h1><p>This partner link is not available.</p>"
    ).encode()
    headers = [
        ("content-type", "text/html; charset=utf-8"),
        ("cache-control", "no-store"),
        ("content-length", str(len(body))),
        *extra,
    ]
    return status, headers, body


NOT_FOUND = _page(404, "Link not found")
GONE = _page(410, "Link no longer active")
STARTING = _page(503, "Starting", ("retry-after", "1"))
_NOT_ALLOWED_BODY = b"Method not allowed\n"
NOT_ALLOWED: Response = (
    405,
    [("allow", "GET, HEAD"), ("content-length", str(len(_NOT_ALLOWED_BODY)))],
    _NOT_ALLOWED_BODY,
)
ROBOTS: Response = (
    200,
    [("content-type", "text/plain"), ("content-length", str(len(_ROBOTS)))],
    _ROBOTS,
)


def router_engine(settings: Settings) -> Engine:
    url = settings.effective_database_url
    lock_wait = settings.router_write_lock_wait_ms
    if url.startswith("sqlite"):
        engine = create_engine(url)

        @event.listens_for(engine, "connect")
        def _patient_busy_wait(dbapi_connection: Any, _record: Any) -> None:
            # Every router worker writes to the same file and SQLite has one writer at a time: a
            # flush waits its turn (others commit within milliseconds) instead of mistaking a
            # busy database for an unreachable one and spilling to the spool.
            dbapi_connection.execute(f"PRAGMA busy_timeout={lock_wait}")

        return engine
    # Fail fast when the database is unreachable (the spool takes over), never hang a flush.
    return create_engine(
        url,
        pool_size=2,
        max_overflow=2,
        connect_args={
            "connect_timeout": 3,
            "tcp_user_timeout": 5000,
            # The same patience for the writers' advisory lock.
            "options": f"-c lock_timeout={lock_wait} -c statement_timeout=30000",
        },
    )


class RouterApp:
    def __init__(self, settings: Settings, *, engine: Engine | None = None) -> None:
        self.settings = settings
        self.engine = engine or router_engine(settings)
        self.sessions = sessionmaker(bind=self.engine, expire_on_commit=False)
        self.cache = LinkCache(http_only=settings.router_cookie_http_only)
        self.snapshot_path = settings.data_dir / snapshot.FILE_NAME
        self.stats = RouterStats()
        spool_dir = settings.router_spool_dir or settings.data_dir / "spool"
        self.recorder = Recorder(
            self.sessions,
            Spool(spool_dir, settings.router_spool_max_bytes),
            self.stats,
            interval=settings.router_flush_interval_ms / 1000,
            buffer_max=settings.router_buffer_max_clicks,
        )
        self.secret = server_secrets(settings)[0]
        self.trusted = parse_trusted(settings.router_trusted_proxies)
        self.country_header = settings.router_country_header.strip().lower()
        self.insecure_localhost = settings.router_insecure_localhost_cookies
        self._hosts: dict[str, str] = {}
        limit, window = settings.router_ip_rate_limit, settings.router_ip_rate_window_seconds
        self.local_limiter = (
            LocalLimiter(limit, window) if limit and not settings.redis_url else None
        )
        self.redis_limiter = (
            RedisLimiter(settings.redis_url, limit, window)
            if limit and settings.redis_url
            else None
        )
        self._cache_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="link-cache")
        self._cache_task: asyncio.Task[None] | None = None
        self._cache_stale = False
        self._stopping = asyncio.Event()

    # --- the two ways in: RSGI (Granian, in production) and ASGI (tests, embedding) --------

    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        # Granian's native interface: no message dicts, headers looked up in Rust. Header
        # values that are not visible ASCII are absent here (browsers send none).
        if scope.proto != "http":
            return
        status, headers, body = await self.answer(
            scope.method, scope.path, scope.query_string, scope.headers.get, scope.client
        )
        if body and scope.method != "HEAD":
            protocol.response_bytes(status, headers, body)
        else:
            protocol.response_empty(status, headers)

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.run_until_complete(self.startup())

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.run_until_complete(self.shutdown())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            # As over RSGI: a header value that is not ASCII is absent.
            headers: dict[str, str] = {}
            for name, value in scope["headers"]:
                with contextlib.suppress(UnicodeDecodeError):
                    headers[name.decode("ascii")] = value.decode("ascii")
            client = scope.get("client")
            method = scope["method"]
            status, head, body = await self.answer(
                method,
                scope["path"],
                scope["query_string"].decode("latin-1"),
                headers.get,
                f"{client[0]}:{client[1]}" if client else "",
            )
            start = [(name.encode(), value.encode("latin-1")) for name, value in head]
            await send({"type": "http.response.start", "status": status, "headers": start})
            await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})
        elif scope["type"] == "lifespan":
            await self.lifespan(receive, send)

    # --- requests -----------------------------------------------------------------------

    async def answer(
        self, method: str, path: str, query: str, header: HeaderGetter, client: str
    ) -> Response:
        """The response to one request. ``client`` is the peer as ``address:port``."""
        if method != "GET" and method != "HEAD":
            return NOT_ALLOWED
        key = path[3:] if path.startswith("/r/") else path[1:]
        if key.endswith("/"):
            key = key[:-1]
        entry = self.cache.links.get(key)
        if entry is None:
            if not self.cache.loaded and path != "/health":
                return STARTING
            return self._not_a_link(path)
        if entry.gone:
            return GONE

        peer = client.rsplit(":", 1)[0]
        if peer.startswith("["):
            peer = peer[1:-1]
        ip = client_ip(peer, header("x-forwarded-for"), self.trusted)
        ip_hash = keyed_hash(ip, purpose="ip", secret=self.secret)
        if self.local_limiter is not None:
            retry = self.local_limiter.hit(ip_hash)
        elif self.redis_limiter is not None:
            retry = await self.redis_limiter.hit(ip_hash)
        else:
            retry = 0
        if retry:
            headers = [
                ("retry-after", str(retry)),
                ("cache-control", "no-store"),
                ("content-length", "18"),
            ]
            return 429, headers, b"Too many requests\n"
        if method == "HEAD":
            # A HEAD is a probe (link checkers, security scanners), never a visit: no click.
            return 302, [("location", entry.plain), *_REDIRECT_HEADERS], b""

        click_id = new_id("clk")
        location = entry.prefix + click_id + entry.suffix
        user_agent = header("user-agent")
        referer = header("referer")
        country = header(self.country_header) if self.country_header else None
        self.recorder.add(
            ClickRecord(
                click_id,
                entry.id,
                entry.partner_id,
                entry.program_id,
                utc_now(),
                ip_hash,
                keyed_hash(f"{ip}\n{user_agent or ''}", purpose="visitor", secret=self.secret),
                clean_text(user_agent, 512),
                clean_text(referer, 2048),
                location[:2048],
                *(utm_fields(query) if "utm_" in query else NO_UTM),
                _country(country),
                "router",
                is_bot(user_agent),
            )
        )
        headers = [("location", location), *_REDIRECT_HEADERS]
        program = entry.program
        if program.cookie_domain is not None:
            cookie = self._cookie(program, header("host"))
            if cookie is not None:
                head, tail = cookie
                headers.append(("set-cookie", head + click_id + tail))
        return 302, headers, b""

    def _cookie(self, program: ProgramEntry, raw_host: str | None) -> tuple[str, str] | None:
        """The program's cookie when this router host may set it (the host is the program's
        cookie domain or a subdomain of it), else None."""
        if raw_host is None:
            return None
        host = self._hosts.get(raw_host)
        if host is None:
            if len(self._hosts) > 1024:
                self._hosts.clear()
            host = self._hosts[raw_host] = request_host(raw_host)
        assert program.cookie_domain is not None
        if not host_in_domain(host, program.cookie_domain):
            return None
        if self.insecure_localhost and is_localhost(host):
            return program.cookie_insecure
        return program.cookie_secure

    def _not_a_link(self, path: str) -> Response:
        if path == "/health":
            self.stats.buffer_depth = len(self.recorder.buffer)
            ready = self.cache.loaded
            body = dumps_stats(self.stats, len(self.cache), ready=ready)
            headers = [
                ("content-type", "application/json"),
                ("cache-control", "no-store"),
                ("content-length", str(len(body))),
            ]
            return 200 if ready else 503, headers, body
        if path == "/robots.txt":
            # Well-behaved crawlers stay off partner links, so they never become clicks at all.
            return ROBOTS
        return NOT_FOUND

    # --- lifespan -----------------------------------------------------------------------

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    log.exception("router startup failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def startup(self) -> None:
        # Startup returns at once and the links load in the background: until they are loaded
        # (from the database, or from the last snapshot when the database cannot be reached)
        # every link answers 503 (and /health says "starting"). Blocking here would also leave
        # a window in which Granian drops a SIGTERM sent to a starting worker.
        gc.collect()
        gc.freeze()  # imports and settings never change: keep them out of every collection
        # The flush thread gives the GIL back after 1 ms instead of 5: requests wait less while a
        # batch is being written.
        sys.setswitchinterval(0.001)
        self.recorder.start()
        self._cache_task = asyncio.get_running_loop().create_task(self._keep_links())

    async def shutdown(self) -> None:
        self._stopping.set()
        if self._cache_task is not None:
            await self._cache_task
        await self.recorder.stop()
        self._cache_executor.shutdown(wait=True)
        if self.redis_limiter is not None:
            await self.redis_limiter.close()
        self.engine.dispose()

    async def _keep_links(self) -> None:
        loop = asyncio.get_running_loop()
        delay = 0.5
        # Until the database answers once: retried with backoff; meanwhile the links of the
        # last snapshot are served, if there is one.
        while not self.cache.live and not self._stopping.is_set():
            try:
                await loop.run_in_executor(self._cache_executor, self._refresh, True)
                log.info("router ready: %d links", len(self.cache))
            except Exception as exc:
                log.warning("loading links failed (%s); retrying in %.1fs", exc, delay)
                if not self.cache.loaded:
                    await loop.run_in_executor(self._cache_executor, self._load_snapshot)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=delay)
                delay = min(delay * 2, 5.0)
        interval = self.settings.router_cache_poll_ms / 1000
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=interval)
            if self._stopping.is_set():
                return
            try:
                await loop.run_in_executor(self._cache_executor, self._refresh, False)
            except Exception as exc:
                if not self._cache_stale:
                    log.warning("link cache refresh failed: %s", exc)
                # Changes may be pruned while we cannot see them: reload fully once back.
                self._cache_stale = True

    def _refresh(self, full: bool) -> None:
        cache = self.cache
        now = time.monotonic()
        reload_due = now - cache.last_full_load >= self.settings.router_cache_reload_seconds
        loaded = None
        with self.sessions() as session, session.begin():
            if full or self._cache_stale or reload_due or not cache.live:
                loaded = cache.load_all(session)
                self._cache_stale = False
            else:
                cache.poll(session)
            if now - cache.last_prune >= 300:
                cache.last_prune = now
                cache.prune(session)
        self.stats.links_source = cache.source
        if loaded is not None:
            self._save_snapshot(*loaded)

    def _save_snapshot(self, programs: Sequence[Any], links: Sequence[Any]) -> None:
        started = time.perf_counter()
        try:
            snapshot.write(
                self.snapshot_path,
                [row._asdict() for row in programs],
                [row._asdict() for row in links],
            )
        except OSError as exc:  # a full disk must not stop the router from serving
            log.warning("could not save the link snapshot %s: %s", self.snapshot_path, exc)
            return
        log.debug(
            "link snapshot saved: %d links in %.0f ms",
            len(links),
            (time.perf_counter() - started) * 1000,
        )

    def _load_snapshot(self) -> None:
        """The last saved links, while the database cannot be reached at start."""
        try:
            saved = snapshot.read(self.snapshot_path)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("the link snapshot %s is unreadable: %s", self.snapshot_path, exc)
            return
        if saved is None:
            return
        self.cache.load_snapshot(saved.programs, saved.links)
        self.stats.links_source = self.cache.source
        log.warning(
            "database unreachable at start: serving %d links from the snapshot of %s",
            len(self.cache),
            saved.written_at.isoformat(),
        )


def _country(raw: str | None) -> str | None:
    if raw is None:
        return None
    value = raw.strip().upper()
    return value if len(value) == 2 and value.isalpha() else None


def create_app(settings: Settings | None = None) -> RouterApp:
    return RouterApp(settings or get_settings())
