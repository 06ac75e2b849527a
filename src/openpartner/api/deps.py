"""Request plumbing: the request-owned session and the authenticated principal.

These dependencies are ``async`` and touch the database only when they must, each time in one
trip to the thread pool: FastAPI runs every sync dependency in the pool, and on a busy API the
thread hops cost more CPU than the work. A handler that wants its whole request in one hop does
its work and the commit together with :func:`run_committed`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, TypeVar

import anyio
from fastapi import Depends, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from openpartner.accounts.scopes import Principal
from openpartner.accounts.service import authenticate, known_principal

T = TypeVar("T")


async def get_session(request: Request) -> AsyncIterator[Session]:
    """The request owns the transaction: commit once after the handler returns (and before the
    response is sent, so a 2xx means committed), roll back on any error. Opening a session does
    no I/O; a session the handler never used (or already committed) is closed without a hop."""
    session: Session = request.app.state.sessionmaker()
    try:
        yield session
    except BaseException:
        await _end(session, commit=False)
        raise
    await _end(session, commit=True)


DbSession = Annotated[Session, Depends(get_session, scope="function")]


async def run_committed(session: Session, work: Callable[[], T]) -> T:
    """Run ``work`` and commit the request's transaction in the same trip to the thread pool;
    what ``work`` raises rolls everything back, as for any handler."""

    def work_and_commit() -> T:
        result = work()
        session.commit()
        return result

    return await run_in_threadpool(work_and_commit)


async def _end(session: Session, *, commit: bool) -> None:
    if not (session.in_transaction() or session.new or session.dirty or session.deleted):
        session.close()  # holds no connection: nothing to do off the loop
        return

    def end() -> None:
        try:
            if commit:
                session.commit()
        finally:
            session.close()  # rolls back whatever was not committed

    # Shielded: a client that disconnects must not leave the connection checked out.
    with anyio.CancelScope(shield=True):
        await run_in_threadpool(end)


def _token_from(request: Request) -> str | None:
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return request.headers.get("x-api-key") or None


async def get_principal(request: Request) -> Principal:
    admin = request.app.state.settings.admin_api_key
    token, admin_token = _token_from(request), admin.get_secret_value() if admin else None
    # A key seen in the last few seconds needs no query (see accounts.service.KEY_CACHE_TTL),
    # and then no session either: no generator dependency to enter and leave per request.
    principal = known_principal(token, admin_token)
    if principal is None:

        def authenticate_and_release() -> Principal:
            # The key is read (and its use recorded) in a transaction of its own, ended in this
            # hop: a request that kept its connection while waiting for the next thread could
            # leave every thread waiting for a connection, and the pool stalled.
            with request.app.state.sessionmaker() as session:
                try:
                    found = authenticate(session, token, admin_token)
                    session.commit()
                except BaseException:
                    session.rollback()
                    raise
                return found

        principal = await run_in_threadpool(authenticate_and_release)
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def require(scope: str) -> Callable[[Principal], Awaitable[Principal]]:
    # async although it awaits nothing: see the module docstring.
    async def dependency(principal: CurrentPrincipal) -> Principal:
        principal.require(scope)
        return principal

    dependency.__name__ = f"require_{scope.replace(':', '_')}"
    return dependency


# One alias per scope, so a route declares what it needs in its signature: ``p: LinksWrite``.
ProgramsRead = Annotated[Principal, Depends(require("programs:read"))]
ProgramsWrite = Annotated[Principal, Depends(require("programs:write"))]
PartnersRead = Annotated[Principal, Depends(require("partners:read"))]
PartnersWrite = Annotated[Principal, Depends(require("partners:write"))]
LinksRead = Annotated[Principal, Depends(require("links:read"))]
LinksWrite = Annotated[Principal, Depends(require("links:write"))]
EventsRead = Annotated[Principal, Depends(require("events:read"))]
EventsWrite = Annotated[Principal, Depends(require("events:write"))]
AttributionRead = Annotated[Principal, Depends(require("attribution:read"))]
CommissionsRead = Annotated[Principal, Depends(require("commissions:read"))]
CommissionsWrite = Annotated[Principal, Depends(require("commissions:write"))]
PayoutsRead = Annotated[Principal, Depends(require("payouts:read"))]
PayoutsWrite = Annotated[Principal, Depends(require("payouts:write"))]
