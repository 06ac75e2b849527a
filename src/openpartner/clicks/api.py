from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from openpartner.api.deps import DbSession, VisitorsWrite
from openpartner.clicks import service
from openpartner.clicks.schemas import ClickCreate, ClickCreated
from openpartner.router.target import client_ip, parse_trusted

router = APIRouter(prefix="/v1/clicks", tags=["clicks"])


@router.post("", status_code=201, response_model=ClickCreated)
def create_click(
    body: ClickCreate, request: Request, session: DbSession, principal: VisitorsWrite
) -> dict[str, Any]:
    """Record a click the merchant's site received itself (no redirect through the router):
    with a secret key from the merchant's server, or a publishable key from the landing page
    (the request's Origin must be one of the program's allowed origins; CORS is answered by
    ``api/cors.py``)."""
    peer = request.client.host if request.client else ""
    trusted = parse_trusted(request.app.state.settings.router_trusted_proxies)
    forwarded = request.headers.get("x-forwarded-for")
    return service.register_click(
        session,
        principal,
        body,
        client_ip=client_ip(peer, forwarded, trusted),
        client_user_agent=request.headers.get("user-agent"),
    )
