"""Serve the router with Granian (a Rust HTTP server for ASGI apps).

Measured on a 2-core machine with a bare ASGI app answering 302, Granian served about 1.3x as
many requests per second as uvicorn with uvloop and httptools: the difference that lets the
router reach its throughput target (docs/benchmarks.md).
"""

from __future__ import annotations

from granian.constants import HTTPModes, Interfaces, Loops
from granian.log import LogLevels
from granian.server import Server

from openpartner.secrets import server_secrets
from openpartner.settings import Settings


def serve(settings: Settings, *, host: str, port: int, workers: int) -> None:
    # Created here, once, so worker processes never race to generate the secret file.
    server_secrets(settings)
    # Imported before the workers are forked, so a worker is serving within milliseconds: a
    # SIGTERM that reaches a Granian worker while it is still importing its app is lost.
    import openpartner.router.app  # noqa: F401

    Server(
        "openpartner.router.app:create_app",
        factory=True,
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        workers=workers,
        loop=Loops.uvloop,
        http=HTTPModes.http1,
        websockets=False,
        log_level=LogLevels(settings.log_level.lower()),
        backlog=2048,
        respawn_failed_workers=True,
        # A worker stuck on shutdown is killed after this long (it loses at most its buffer).
        workers_kill_timeout=30,
    ).serve()
