"""Request plumbing: the request-owned session and the authenticated principal."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from openpartner.accounts.scopes import Principal
from openpartner.accounts.service import authenticate


def get_session(request: Request) -> Iterator[Session]:
    """The request owns the transaction: commit once after the handler returns (and before the
    response is sent, so a 2xx means committed), roll back on any error."""
    session: Session = request.app.state.sessionmaker()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


DbSession = Annotated[Session, Depends(get_session, scope="function")]


def _token_from(request: Request) -> str | None:
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return request.headers.get("x-api-key") or None


def get_principal(request: Request, session: DbSession) -> Principal:
    admin = request.app.state.settings.admin_api_key
    return authenticate(session, _token_from(request), admin.get_secret_value() if admin else None)


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def require(scope: str) -> Callable[[Principal], Awaitable[Principal]]:
    # async although it awaits nothing: FastAPI runs a sync dependency in the thread pool, and
    # this check is too small to be worth a thread hop on every request.
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
