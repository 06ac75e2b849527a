from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from openpartner.api.deps import DbSession, EventsWrite
from openpartner.clicks import service
from openpartner.clicks.schemas import ClickCreate, ClickCreated
from openpartner.router.target import client_ip, parse_trusted

router = APIRouter(prefix="/v1/clicks", tags=["clicks"])


@router.post("", status_code=201, response_model=ClickCreated)
def create_click(
    body: ClickCreate,
    request: Request,
    response: Response,
    session: DbSession,
    principal: EventsWrite,
) -> dict[str, Any]:
    """Record a click the merchant's site received itself (no redirect through the router):
    with a secret key from the merchant's server, or a publishable key from the landing page
    (the request's Origin must be one of the program's allowed origins)."""
    origin = request.headers.get("origin")
    peer = request.client.host if request.client else ""
    trusted = parse_trusted(request.app.state.settings.router_trusted_proxies)
    forwarded = request.headers.get("x-forwarded-for")
    result = service.register_click(
        session,
        principal,
        body,
        origin=origin,
        client_ip=client_ip(peer, forwarded, trusted),
        client_user_agent=request.headers.get("user-agent"),
    )
    if principal.kind == "publishable" and origin:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
    return result


@router.options("", include_in_schema=False)
def preflight(request: Request) -> Response:
    # A preflight carries no key, so it cannot be checked against a program: it is answered for
    # any origin, and the POST that follows is origin-checked against the key's program.
    headers = {
        "Access-Control-Allow-Methods": "POST",
        "Access-Control-Allow-Headers": "authorization, content-type, x-api-key",
        "Access-Control-Max-Age": "600",
        "Vary": "Origin",
    }
    origin = request.headers.get("origin")
    if origin:
        headers["Access-Control-Allow-Origin"] = origin
    return Response(status_code=204, headers=headers)
