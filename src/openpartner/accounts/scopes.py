"""Scopes and the request principal. A scoped key gets exactly its scopes, never admin."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from openpartner.core.errors import Forbidden, NotFound

SCOPES = frozenset(
    {
        "programs:read",
        "programs:write",
        "partners:read",
        "partners:write",
        "links:read",
        "links:write",
        "events:read",
        "events:write",
        "attribution:read",
        "commissions:read",
        "commissions:write",
        "payouts:read",
        "payouts:write",
    }
)
# A publishable key lives in browsers: it may only record clicks and identify visitors.
PUBLISHABLE_SCOPES = frozenset({"events:write"})


@dataclass(frozen=True)
class Principal:
    key_id: str
    kind: str
    is_admin: bool = False
    scopes: frozenset[str] = field(default_factory=frozenset)
    program_id: str | None = None
    partner_id: str | None = None

    def require(self, scope: str) -> None:
        if self.is_admin or scope in self.scopes:
            return
        raise Forbidden(f"This API key lacks the {scope!r} scope.", code="missing_scope")

    def require_admin(self) -> None:
        if not self.is_admin:
            raise Forbidden("This operation needs an admin key.", code="admin_required")

    def check_program(self, program_id: str) -> None:
        """Keys bound to a program see nothing else; we answer 404 so ids do not leak."""
        if self.program_id is not None and self.program_id != program_id:
            raise NotFound("No such resource.")

    def check_partner(self, partner_id: str) -> None:
        if self.partner_id is not None and self.partner_id != partner_id:
            raise NotFound("No such resource.")

    def filters(self, model: Any) -> list[Any]:
        """WHERE clauses that limit a query on ``model`` to what this principal may read."""
        clauses: list[Any] = []
        if self.program_id is not None and hasattr(model, "program_id"):
            clauses.append(model.program_id == self.program_id)
        if self.partner_id is not None:
            if model.__tablename__ == "partners":
                clauses.append(model.id == self.partner_id)
            elif hasattr(model, "partner_id"):
                clauses.append(model.partner_id == self.partner_id)
            else:
                clauses.append(sa.false())  # nothing partner-owned to show
        return clauses
