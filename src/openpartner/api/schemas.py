"""Base shapes for request and response bodies, and the rules every request's input obeys.

Every request body is a :class:`RequestModel`, whose one validator is the chokepoint for text:
no control character in any string or key at any depth (``core/text.py``; tab, line feed and
carriage return are allowed in fields marked :data:`FREE_TEXT`), and no nesting deeper than
:data:`MAX_DEPTH`. Times come in as :data:`Timestamp`. Paths, query strings and the depth of raw
JSON bodies are checked before routing, by ``api/limits.py``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Union, get_args, get_origin

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Strict, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError, to_json

from openpartner.core.text import bad_character

MAX_METADATA_BYTES = 8192
MAX_DEPTH = 32
"""Deepest nesting of objects and arrays in a request: a field's value counts as level 1."""
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
"""Request timestamps lie in ``[EARLIEST, LATEST)``: nothing this platform records happened
before 2000, and the bounds are far enough from years 1 and 9999 that no offset overflows."""


class _FreeText:
    """Marks a field whose strings are free text (see the module docstring)."""


FREE_TEXT = _FreeText()


class RequestModel(BaseModel):
    """Request bodies: unknown fields and type coercion are errors, not guesses."""

    model_config = ConfigDict(
        extra="forbid", strict=True, str_max_length=4096, str_strip_whitespace=True
    )
    free_text_fields: ClassVar[frozenset[str]] = frozenset()
    """Fields marked :data:`FREE_TEXT` (filled in for each subclass)."""
    checked_per_item: ClassVar[frozenset[str]] = frozenset()
    """Fields whose items are validated one by one later, each refused on its own (a batch)."""

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls.free_text_fields = frozenset(
            name
            for name, field in cls.model_fields.items()
            if FREE_TEXT in field.metadata or _marked(field.annotation)
        )

    @model_validator(mode="before")
    @classmethod
    def _refuse_unsafe_input(cls, data: Any) -> Any:
        if isinstance(data, dict) and not _clearly_safe(data):
            errors = list(_unsafe(data, cls.free_text_fields, cls.checked_per_item))
            if errors:
                raise ValidationError.from_exception_data(cls.__name__, errors)
        return data


class ResponseModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


def _marked(annotation: Any) -> bool:
    """``annotation`` is, or is a union with, a type annotated :data:`FREE_TEXT`."""
    if get_origin(annotation) is Annotated:
        return any(m is FREE_TEXT for m in annotation.__metadata__)
    if get_origin(annotation) is Union or type(annotation).__name__ == "UnionType":
        return any(_marked(arg) for arg in get_args(annotation))
    return False


_SUSPECT = re.compile(rb"\\(?:u00[01]|u[dD][89a-fA-F]|[bfnrt])")
"""In JSON, every control character and surrogate a string holds is escaped; this finds every
escape that may be one (an escaped backslash followed by ``n`` matches too: it only costs the
full walk)."""


def _clearly_safe(data: dict[Any, Any]) -> bool:
    """True when ``data`` cannot hold a refused character or nest too deep: the common body,
    told from its JSON (serialised in Rust) in about a tenth of the walk's time."""
    try:
        raw = to_json(data)
    except Exception:  # anything it cannot serialise is left to the walk
        return False
    return _SUSPECT.search(raw) is None and raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH


def _unsafe(
    data: dict[Any, Any], free_text: frozenset[str], skipped: frozenset[str]
) -> Iterator[InitErrorDetails]:
    """Every string or key that holds a refused character, and every value nested too deep.
    Iterative: a body nested a thousand levels must not exhaust the stack here."""
    # Children are pushed in reverse, so errors come out in the body's order.
    stack: list[tuple[tuple[str | int, ...], Any, bool, int]] = []
    for key, value in reversed(data.items()):
        if key not in skipped:
            stack.append(((key,), value, key in free_text, 1))
    for key in data:
        if isinstance(key, str) and (bad := bad_character(key)):
            yield _error((key,), "control_character", f"Key holds the character {bad}.", key)
    while stack:
        loc, value, text, depth = stack.pop()
        if isinstance(value, str):
            if bad := bad_character(value, free_text=text):
                yield _error(loc, "control_character", f"Text holds the character {bad}.", value)
            continue
        if not isinstance(value, dict | list):
            continue
        if depth > MAX_DEPTH:
            yield _error(loc, "nesting_too_deep", f"Nested deeper than {MAX_DEPTH} levels.", "")
            continue
        items = list(value.items() if isinstance(value, dict) else enumerate(value))
        for key, _ in items:
            if isinstance(key, str) and (bad := bad_character(key)):
                yield _error(
                    (*loc, key), "control_character", f"Key holds the character {bad}.", key
                )
        stack.extend(((*loc, key), item, text, depth + 1) for key, item in reversed(items))


def _error(loc: tuple[str | int, ...], kind: str, message: str, value: Any) -> InitErrorDetails:
    return InitErrorDetails(type=PydanticCustomError(kind, message), loc=loc, input=value)


def _small_json(value: dict[str, Any]) -> dict[str, Any]:
    # Compact UTF-8 JSON, measured by pydantic-core: it runs for every event ingested.
    if len(to_json(value)) > MAX_METADATA_BYTES:
        raise ValueError(f"metadata must serialise to at most {MAX_METADATA_BYTES} bytes")
    return value


def _sane_time(value: datetime) -> datetime:
    # The year first: year 1 or 9999 with an offset overflows when converted to UTC.
    if not EARLIEST.year - 1 <= value.year <= LATEST.year or not (
        EARLIEST <= value.astimezone(UTC) < LATEST
    ):
        raise PydanticCustomError(
            "timestamp_out_of_range",
            "Timestamps must be from 2000-01-01 (UTC) and before 2100-01-01 (UTC).",
        )
    return value


Metadata = Annotated[dict[str, Any], AfterValidator(_small_json), FREE_TEXT]
FreeText = Annotated[str, FREE_TEXT]
"""A string that may hold tab, line feed and carriage return (names, reasons)."""
Timestamp = Annotated[AwareDatetime, Strict(False), AfterValidator(_sane_time)]
"""A request's time: ISO 8601 with an offset, within ``[EARLIEST, LATEST)``."""
