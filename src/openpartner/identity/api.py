from __future__ import annotations

from fastapi import APIRouter, Request

from openpartner.api.deps import DbSession, VisitorsWrite
from openpartner.attribution.service import rederive_customer
from openpartner.identity import service
from openpartner.identity.schemas import IdentifyRequest, IdentifyResponse
from openpartner.programs.service import program_for

router = APIRouter(prefix="/v1", tags=["identity"])


@router.post("/identify", response_model=IdentifyResponse)
def identify(
    body: IdentifyRequest, request: Request, session: DbSession, principal: VisitorsWrite
) -> dict[str, object]:
    """Bind a click id (or a visitor id carrying one) to the merchant's customer id.

    Server calls use a secret key with ``events:write``; browser calls use the program's
    publishable key and must come from one of the program's ``allowed_origins``."""
    program = program_for(session, principal, body.program_id)
    source = "browser" if principal.kind == "publishable" else "api"
    result = service.bind(
        session,
        program,
        customer_id=body.customer_id,
        click_id=body.click_id,
        visitor_id=body.visitor_id,
        email=body.email,
        source=source,
    )
    attributed = (
        rederive_customer(session, program.id, body.customer_id.strip())
        if result.new_binding
        else 0
    )
    return {
        "customer_id": body.customer_id.strip(),
        "new_binding": result.new_binding,
        "attributed_events": attributed,
        "conflicts": result.conflicts,
    }
