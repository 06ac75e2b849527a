"""Keyset (cursor) pagination over time-sortable ids. The cursor is opaque to clients."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.orm import Session

from openpartner.core.errors import BadRequest

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    data: list[T]
    has_more: bool
    next_cursor: str | None


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": last_id}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)
        after = value["after"]
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise BadRequest("The pagination cursor is not valid.", code="invalid_cursor") from None
    if not isinstance(after, str) or len(after) > 64:
        raise BadRequest("The pagination cursor is not valid.", code="invalid_cursor")
    return after


def paginate(
    session: Session, stmt: sa.Select[Any], id_column: Any, *, limit: int, cursor: str | None
) -> tuple[Sequence[Any], bool, str | None]:
    """Rows after ``cursor`` in id order, the ``has_more`` flag and the next cursor."""
    if cursor:
        stmt = stmt.where(id_column > decode_cursor(cursor))
    rows = session.scalars(stmt.order_by(id_column).limit(limit + 1)).all()
    has_more = len(rows) > limit
    rows = rows[:limit]
    return rows, has_more, (encode_cursor(rows[-1].id) if has_more and rows else None)
