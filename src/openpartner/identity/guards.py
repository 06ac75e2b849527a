"""Junk identifiers that must never stitch identities together (the Segment / Snowplow /
PostHog lesson: one ``"null"`` customer id would merge every anonymous visitor into one person)."""

from __future__ import annotations

from openpartner.core.errors import ValidationFailed

BLOCKED = frozenset(
    {
        "",
        "null",
        "undefined",
        "none",
        "nil",
        "nan",
        "0",
        "-1",
        "anonymous",
        "anon",
        "guest",
        "unknown",
        "[object object]",
        "true",
        "false",
        "n/a",
        "na",
        "test",
        "user",
        "email",
        "id",
        "customer",
        "{}",
        "[]",
        "''",
        '""',
    }
)


def is_blocked(value: str) -> bool:
    return value.strip().lower() in BLOCKED


def check_identifier(value: str | None, field: str) -> str | None:
    """The value, stripped; raises a 422 naming the field when it is a blocked junk value."""
    if value is None:
        return None
    if is_blocked(value):
        raise ValidationFailed(
            f"{field} {value!r} is a placeholder, not an identifier.",
            code="blocked_identifier",
            errors=[{"loc": ["body", field], "msg": "blocked junk value", "type": "blocked"}],
        )
    return value.strip()
