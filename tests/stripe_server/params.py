"""Reading request parameters the way Stripe validates them (all values arrive as strings)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tests.stripe_server import errors

Params = dict[str, Any]


def only(params: Params, allowed: Iterable[str]) -> None:
    """Stripe refuses parameters it does not know; so does this server (no silent typos)."""
    allowed = set(allowed) | {"expand"}  # expansion is accepted and ignored
    for name in params:
        if name not in allowed:
            raise errors.unknown_parameter(name)


def string(params: Params, name: str, *, required: bool = False) -> str | None:
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise errors.missing(name)
        return None
    if not isinstance(value, str):
        raise errors.invalid(name, f"Invalid string: {name}", code="parameter_invalid_string")
    return value


def integer(
    params: Params, name: str, *, required: bool = False, minimum: int | None = None
) -> int | None:
    raw = string(params, name, required=required)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise errors.invalid(name, f"Invalid integer: {raw}") from None
    if minimum is not None and value < minimum:
        raise errors.invalid(name, f"This value must be greater than or equal to {minimum}.")
    return value


def boolean(params: Params, name: str) -> bool | None:
    raw = string(params, name)
    if raw is None:
        return None
    if raw not in ("true", "false"):
        raise errors.invalid(name, f"Invalid boolean: {raw}", code="parameter_invalid_boolean")
    return raw == "true"


def currency(params: Params, name: str = "currency") -> str:
    value = string(params, name, required=True)
    assert value is not None
    if len(value) != 3 or not value.isalpha():
        raise errors.invalid(name, f"Invalid currency: {value.lower()}.", code="invalid_currency")
    return value.lower()


def mapping(params: Params, name: str) -> dict[str, Any]:
    value = params.get(name, {})
    if value == "":
        return {}
    if not isinstance(value, dict):
        raise errors.invalid(name, f"Invalid object: {name}", code="parameter_invalid_object")
    return value


def metadata(params: Params, current: dict[str, str] | None = None) -> dict[str, str]:
    """Stripe merges metadata; an empty value deletes a key, an empty ``metadata`` clears it."""
    if params.get("metadata") == "":
        return {}
    merged = dict(current or {})
    for key, value in mapping(params, "metadata").items():
        if not isinstance(value, str):
            raise errors.invalid(f"metadata[{key}]", "Invalid metadata value.", code=None)
        if value == "":
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged
