"""Browser requests with a publishable key must come from one of the program's origins."""

from __future__ import annotations

from openpartner.accounts.scopes import Principal
from openpartner.core.errors import Forbidden
from openpartner.programs.models import Program


def check_origin(principal: Principal, program: Program, origin: str | None) -> None:
    """Secret keys pass (server to server); publishable keys need an allowed ``Origin``."""
    if principal.kind != "publishable":
        return
    normalized = (origin or "").strip().lower().rstrip("/")
    if not normalized or normalized not in program.allowed_origins:
        raise Forbidden(
            "This origin may not use the program's publishable key.", code="origin_not_allowed"
        )
