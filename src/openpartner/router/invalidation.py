"""Cache invalidation hooks for the services that change what the router serves.

Services call these inside their transaction, so a change and its invalidation commit (or roll
back) together; routers pick the row up at their next poll (every ``ROUTER_CACHE_POLL_MS``).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from openpartner.router.models import RouterInvalidation


def link_changed(session: Session, link_id: str) -> None:
    session.add(RouterInvalidation(kind="link", ref_id=link_id))


def program_changed(session: Session, program_id: str) -> None:
    session.add(RouterInvalidation(kind="program", ref_id=program_id))
