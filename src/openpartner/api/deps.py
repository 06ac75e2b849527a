"""Request plumbing: the request-owned session and the authenticated principal.

These dependencies are ``async`` and touch the database only when they must, each time in one
trip to the thread pool: FastAPI runs every sync dependency in the pool, and on a busy API the
thread hops cost more CPU than the work. A handler that wants its whole request in one hop does
its work and the commit together with :func:`run_committed`.

A request's database work, from its first statement to its commit, holds one of the process's
database slots (``api/concurrency.py``), and its commit runs in the slot's own thread: a request
that holds a lock never waits for a thread behind requests waiting for that lock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any, TypeVar

import anyio
from fastapi import Depends, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from openpartner.accounts.scopes import Principal
from openpartner.accounts.service import authenticate, known_principal
from openpartner.api.access import Access, check
from openpartner.api.concurrency import DatabaseSlots

T = TypeVar("T")


async def get_session(request: Request) -> AsyncIterator[Session]:
    """The request owns the transaction: commit once after the handler returns (and before the
    response is sent, so a 2xx means committed), roll back on any error. Opening a session does
    no I/O; a session the handler never used (or already committed) is closed without a hop."""
    slots: DatabaseSlots = request.app.state.database_slots
    async with slots.hold(request.scope):
        session: Session = request.app.state.sessionmaker()
        try:
            yield session
        except BaseException:
            await _end(slots, session, commit=False)
            raise
        await _end(slots, session, commit=True)


DbSession = Annotated[Session, Depends(get_session, scope="function")]


async def run_committed(session: Session, work: Callable[[], T]) -> T:
    """Run ``work`` and commit the request's transaction in the same trip to the thread pool;
    what ``work`` raises rolls everything back, as for any handler."""

    def work_and_commit() -> T:
        result = work()
        session.commit()
        return result

    return await run_in_threadpool(work_and_commit)


async def _end(slots: DatabaseSlots, session: Session, *, commit: bool) -> None:
    if not (session.in_transaction() or session.new or session.dirty or session.deleted):
        session.close()  # holds no connection: nothing to do off the loop
        return

    def end() -> None:
        try:
            if commit:
                session.commit()
        finally:
            session.close()  # rolls back whatever was not committed

    # Shielded: a client that disconnects must not leave the connection checked out. In the
    # slot's own thread: a commit that waited behind handlers would hold its locks meanwhile.
    with anyio.CancelScope(shield=True):
        await slots.run_sync(end)


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

        # In the request's slot when its session dependency came first, else in one of its own.
        slots: DatabaseSlots = request.app.state.database_slots
        async with slots.hold(request.scope):
            principal = await slots.run_sync(authenticate_and_release)
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def guard(access: Access) -> Callable[..., Awaitable[Principal | None]]:
    """The dependency that enforces ``access`` (see :mod:`openpartner.api.access`)."""
    if access.public is not None:

        async def public() -> None:
            return None

        public.access = access  # type: ignore[attr-defined]
        return public

    # async although it awaits nothing but the key: see the module docstring.
    async def dependency(request: Request, principal: CurrentPrincipal) -> Principal:
        check(access, principal, request.headers.get("origin"))
        return principal

    dependency.access = access  # type: ignore[attr-defined]
    dependency.__name__ = f"allow_{(access.scope or 'admin').replace(':', '_')}"
    return dependency


def public(reason: str) -> Any:
    """For ``dependencies=[...]`` of a route that takes no key: says why it is open."""
    return Depends(guard(Access(None, public=reason)))


# One alias per policy, so a route declares who may call it in its signature: ``p: LinksWrite``.
# "Own" aliases let partner keys in; they then see only their own rows (accounts/scopes.py).
ProgramsRead = Annotated[Principal, Depends(guard(Access("programs:read")))]
ProgramsWrite = Annotated[Principal, Depends(guard(Access("programs:write")))]
PartnersRead = Annotated[Principal, Depends(guard(Access("partners:read")))]
OwnPartnerRead = Annotated[Principal, Depends(guard(Access("partners:read", partner=True)))]
PartnersWrite = Annotated[Principal, Depends(guard(Access("partners:write")))]
OwnLinksRead = Annotated[Principal, Depends(guard(Access("links:read", partner=True)))]
OwnLinksWrite = Annotated[Principal, Depends(guard(Access("links:write", partner=True)))]
VisitorsWrite = Annotated[Principal, Depends(guard(Access("visitors:write", publishable=True)))]
EventsRead = Annotated[Principal, Depends(guard(Access("events:read")))]
EVENTS_WRITE = Access("events:write")
EventsWrite = Annotated[Principal, Depends(guard(EVENTS_WRITE))]
AttributionRead = Annotated[Principal, Depends(guard(Access("attribution:read")))]
OwnAnalyticsRead = Annotated[Principal, Depends(guard(Access("attribution:read", partner=True)))]
CommissionsRead = Annotated[Principal, Depends(guard(Access("commissions:read")))]
OwnCommissionsRead = Annotated[Principal, Depends(guard(Access("commissions:read", partner=True)))]
CommissionsWrite = Annotated[Principal, Depends(guard(Access("commissions:write")))]
PayoutsRead = Annotated[Principal, Depends(guard(Access("payouts:read")))]
OwnPayoutsRead = Annotated[Principal, Depends(guard(Access("payouts:read", partner=True)))]
PayoutsWrite = Annotated[Principal, Depends(guard(Access("payouts:write")))]
KeysRead = Annotated[Principal, Depends(guard(Access("keys:read", partner=True)))]
KeysWrite = Annotated[Principal, Depends(guard(Access("keys:write", partner=True)))]
