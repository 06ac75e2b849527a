"""The one check that browser (publishable) keys are used from their program's own site."""

from __future__ import annotations

from openpartner.accounts.scopes import Principal
from openpartner.core.errors import Forbidden, ValidationFailed
from openpartner.core.urls import normalize_origin


def check_origin(principal: Principal, origin_header: str | None) -> None:
    """Publishable keys live in web pages anyone can read, so a request made with one must come
    from one of its program's ``allowed_origins`` (the browser's ``Origin`` header, which page
    scripts cannot forge), read with the key. Secret keys are server-side and pass. Raises
    ``Forbidden(code="origin_not_allowed")``."""
    if not principal.is_publishable:
        return
    if not origin_header:
        raise Forbidden(
            "Publishable keys need the browser's Origin header.", code="origin_not_allowed"
        )
    if allowed_origin(origin_header) not in principal.origins:
        raise Forbidden(
            f"{origin_header[:200]!r} is not one of this program's allowed origins.",
            code="origin_not_allowed",
        )


def allowed_origin(origin_header: str) -> str | None:
    """The header as it is stored in ``allowed_origins``, or None if it is no origin."""
    try:
        return normalize_origin(origin_header)
    except ValidationFailed:
        return None
