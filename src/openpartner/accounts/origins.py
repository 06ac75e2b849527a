"""The one check that browser (publishable) keys are used from their program's own site."""

from __future__ import annotations

from openpartner.accounts.scopes import Principal
from openpartner.core.errors import Forbidden, NotFound, ValidationFailed
from openpartner.core.urls import normalize_origin
from openpartner.programs.models import Program


def check_origin(principal: Principal, program: Program, origin_header: str | None) -> None:
    """Publishable keys live in web pages anyone can read, so a request made with one must come
    from one of the program's ``allowed_origins`` (the browser's ``Origin`` header, which page
    scripts cannot forge). Secret keys are server-side and pass. Raises
    ``Forbidden(code="origin_not_allowed")``."""
    if principal.kind != "publishable":
        return
    if principal.program_id != program.id:
        # A publishable key is bound to one program; anything else does not exist for it.
        raise NotFound("No such resource.")
    if not origin_header:
        raise Forbidden(
            "Publishable keys need the browser's Origin header.", code="origin_not_allowed"
        )
    try:
        origin = normalize_origin(origin_header)
    except ValidationFailed:
        origin = None
    if origin is None or origin not in program.allowed_origins:
        raise Forbidden(
            f"{origin_header!r} is not one of this program's allowed origins.",
            code="origin_not_allowed",
        )
