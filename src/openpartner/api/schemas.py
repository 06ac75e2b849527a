"""Base shapes for request and response bodies."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict

MAX_METADATA_BYTES = 8192


class RequestModel(BaseModel):
    """Request bodies: unknown fields and type coercion are errors, not guesses."""

    model_config = ConfigDict(
        extra="forbid", strict=True, str_max_length=4096, str_strip_whitespace=True
    )


class ResponseModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


def _small_json(value: dict[str, Any]) -> dict[str, Any]:
    if len(json.dumps(value)) > MAX_METADATA_BYTES:
        raise ValueError(f"metadata must serialise to at most {MAX_METADATA_BYTES} bytes")
    return value


Metadata = Annotated[dict[str, Any], AfterValidator(_small_json)]
