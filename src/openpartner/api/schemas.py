"""Base shapes for request and response bodies."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict
from pydantic_core import to_json

MAX_METADATA_BYTES = 8192


class RequestModel(BaseModel):
    """Request bodies: unknown fields and type coercion are errors, not guesses."""

    model_config = ConfigDict(
        extra="forbid", strict=True, str_max_length=4096, str_strip_whitespace=True
    )


class ResponseModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


def _small_json(value: dict[str, Any]) -> dict[str, Any]:
    # Compact UTF-8 JSON, measured by pydantic-core: it runs for every event ingested.
    if len(to_json(value)) > MAX_METADATA_BYTES:
        raise ValueError(f"metadata must serialise to at most {MAX_METADATA_BYTES} bytes")
    return value


Metadata = Annotated[dict[str, Any], AfterValidator(_small_json)]
