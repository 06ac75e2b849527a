from __future__ import annotations

from pydantic import Field

from openpartner.api.schemas import RequestModel

EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


class IdentifyRequest(RequestModel):
    customer_id: str = Field(max_length=255)
    click_id: str | None = Field(default=None, max_length=32)
    visitor_id: str | None = Field(default=None, max_length=128)
    email: str | None = Field(default=None, max_length=320, pattern=EMAIL_PATTERN)
    program_id: str | None = Field(default=None, max_length=32)
    """Required with an admin or unbound key; implied by a program-bound key."""


class IdentifyConflict(RequestModel):
    identifier: str
    value: str
    bound_customer_id: str


class IdentifyResponse(RequestModel):
    customer_id: str
    new_binding: bool
    """True when this call bound a click or visitor that was not bound before."""
    attributed_events: int
    """Earlier events of this customer (re-)attributed because of this call."""
    conflicts: list[IdentifyConflict]
    """Binds refused because the identifier already belongs to another customer."""
