"""The API application factory."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

import anyio.to_thread
import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel
from sqlalchemy.orm import Session, sessionmaker

from openpartner import __version__
from openpartner.accounts.api import router as api_keys_router
from openpartner.analytics.api import router as analytics_router
from openpartner.api import errors
from openpartner.api.access import api_routes, route_access
from openpartner.api.concurrency import Admission, DatabaseSlots, slot_count, thread_count
from openpartner.api.cors import PublishableCors
from openpartner.api.deps import public
from openpartner.api.limits import BodyLimit, InputGuard
from openpartner.attribution.api import router as attribution_router
from openpartner.clicks.api import router as clicks_router
from openpartner.commissions.api import router as commissions_router
from openpartner.coupons.api import router as coupons_router
from openpartner.db.session import session_factory
from openpartner.deals.api import router as deals_router
from openpartner.events.api import router as events_router
from openpartner.events.fast_path import EventsFastPath
from openpartner.events.group_commit import GroupCommitter
from openpartner.identity.api import router as identity_router
from openpartner.integrations.stripe.webhook import router as stripe_router
from openpartner.links.api import router as links_router
from openpartner.partners.api import router as partners_router
from openpartner.payouts.api import router as payouts_router
from openpartner.programs.api import router as programs_router
from openpartner.programs.service import allowed_origins_anywhere
from openpartner.settings import Settings, get_settings

DESCRIPTION = """Partner attribution and payouts with exact money and replayable attribution.

Authenticate with `Authorization: Bearer op_sk_…` or `X-API-Key: op_sk_…`.
Errors are RFC 9457 `application/problem+json` with a stable `code`."""


ROUTERS = (
    programs_router,
    partners_router,
    links_router,
    api_keys_router,
    identity_router,
    events_router,
    deals_router,
    coupons_router,
    stripe_router,
    attribution_router,
    commissions_router,
    payouts_router,
    analytics_router,
    clicks_router,
)


class Readiness(BaseModel):
    status: Literal["ready", "unavailable"]
    database: Literal["ok", "unreachable"]


def create_app(
    settings: Settings | None = None, sessions: sessionmaker[Session] | None = None
) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # More threads than database slots (api/concurrency.py), fewer than AnyIO's default 40:
        # a request holding a lock always gets a thread to commit; database work waits for its
        # slot, cheaply, on the event loop, never for a connection inside a thread.
        limiter = anyio.to_thread.current_default_thread_limiter()
        limiter.total_tokens = thread_count(settings)
        if getattr(app.state, "freeze_gc", False):
            # Everything loaded at start-up (modules, routes, models) lives as long as the
            # process: kept out of every collection, a full collection no longer walks it. It
            # was the latency tail: single events' p99 122-149 ms before, 50-53 ms after
            # (docs/benchmarks.md).
            gc.collect()
            gc.freeze()
        yield

    app = FastAPI(
        title="OpenPartner API",
        version=__version__,
        description=DESCRIPTION,
        docs_url="/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.sessionmaker = sessions or session_factory()
    app.state.database_slots = DatabaseSlots(slot_count(settings))
    app.state.events_committer = GroupCommitter(
        app.state.sessionmaker, settings, slots=app.state.database_slots
    )
    errors.install(app)
    for router in ROUTERS:
        app.include_router(router, responses=errors.PROBLEM_RESPONSES)

    @app.get("/health", tags=["operations"], dependencies=[public("liveness probe")])
    async def health() -> dict[str, str]:
        # async: answered on the event loop, without a thread, however busy the pool is.
        return {"status": "ok", "version": __version__}

    @app.get(
        "/ready",
        tags=["operations"],
        dependencies=[public("readiness probe")],
        response_model=Readiness,
        responses={503: {"model": Readiness, "description": "The database is unreachable."}},
    )
    async def ready(request: Request) -> JSONResponse:
        def probe() -> None:
            with request.app.state.sessionmaker() as session:
                session.execute(sa.text("SELECT 1"))

        try:
            # Its turn like any request's: a probe that holds a connection is database work.
            slots: DatabaseSlots = request.app.state.database_slots
            async with slots.hold(request.scope):
                await slots.run_sync(probe)
        except sa.exc.SQLAlchemyError:
            return JSONResponse({"status": "unavailable", "database": "unreachable"}, 503)
        return JSONResponse({"status": "ready", "database": "ok"})

    app.add_middleware(EventsFastPath)  # inside BodyLimit and InputGuard: the same limits apply
    # Inside the CORS layer: a browser can read the refusal.
    app.add_middleware(InputGuard)

    async def load_origins() -> set[str]:
        def load() -> set[str]:
            with app.state.sessionmaker() as session:
                return allowed_origins_anywhere(session)

        # Database work like a request's: it waits for a slot (api/concurrency.py).
        slots: DatabaseSlots = app.state.database_slots
        async with slots.hold():
            return await slots.run_sync(load)

    browser_paths = {
        route.path
        for route in api_routes(ROUTERS)
        if any(access.publishable for access in route_access(route))
    }
    app.add_middleware(PublishableCors, paths=browser_paths, load_origins=load_origins)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    # Outermost: a request refused for overload costs nothing else.
    app.add_middleware(Admission, max_requests=settings.api_max_concurrent_requests)
    return app


def route_table(app: FastAPI) -> list[APIRoute]:
    """Every route of the API: the app's own and those of :data:`ROUTERS` (the access-policy
    test holds this equal to the OpenAPI document)."""
    own = [route for route in app.router.routes if isinstance(route, APIRoute)]
    return own + list(api_routes(ROUTERS))


def served_app() -> FastAPI:
    """The app as ``openpartner api`` serves it: a long-running process, which freezes its
    start-up objects out of the garbage collector (tests, which start many apps in one process,
    do not)."""
    app = create_app()
    app.state.freeze_gc = True
    return app
