"""Render every client error as RFC 9457 ``application/problem+json``; never a bare 500 for
something a client sent.

The OpenAPI document declares the same: every operation lists the problem responses of
:data:`PROBLEM_RESPONSES` (one per status of the error tree in :mod:`openpartner.core.errors`)
with the :class:`Problem` schema, so a client can rely on the shape of any error it gets.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from pydantic.json_schema import SkipJsonSchema
from sqlalchemy.exc import IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from openpartner.core.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    Gone,
    NotFound,
    OpenPartnerError,
    PayloadTooLarge,
    RateLimited,
    ServiceUnavailable,
    Unauthorized,
    ValidationFailed,
)

log = logging.getLogger(__name__)
PROBLEM = "application/problem+json"


def _optional(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


class FieldError(BaseModel):
    loc: list[str] = Field(description="Where the bad value is: `body`, `query`, ... then names.")
    msg: str
    type: str


class Problem(BaseModel):
    """An RFC 9457 problem: the body of every error response."""

    type: str = Field(description="A URI naming the problem; ends with `code`.")
    title: str
    status: int
    code: str = Field(description="Stable and machine-readable: branch on this.")
    detail: str = Field(description="For humans; may change.")
    # Absent, never null, when there is nothing to say.
    instance: str | SkipJsonSchema[None] = Field(
        default=None, description="The request path.", json_schema_extra=_optional
    )
    errors: list[FieldError] | SkipJsonSchema[None] = Field(
        default=None,
        description="Field-level details of a request that failed validation.",
        json_schema_extra=_optional,
    )


# One entry per status of the error tree: any API operation may answer any of them (the body
# limit, the key check and the database apply to every route), always as a Problem.
ERROR_CLASSES: tuple[type[OpenPartnerError], ...] = (
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    Gone,
    PayloadTooLarge,
    ValidationFailed,
    RateLimited,
    ServiceUnavailable,
)
_PROBLEM_REF = "#/components/schemas/Problem"
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    error.status: {
        "description": error.title,
        "content": {PROBLEM: {"schema": {"$ref": _PROBLEM_REF}}},
    }
    for error in ERROR_CLASSES
}


def problem_response(error: OpenPartnerError, request: Request) -> JSONResponse:
    return JSONResponse(
        error.problem(instance=request.url.path),
        status_code=error.status,
        media_type=PROBLEM,
        headers=error.headers,
    )


def _field_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    out = []
    for err in errors:
        out.append(
            {
                "loc": [str(part) for part in err.get("loc", ())],
                "msg": str(err.get("msg", "")),
                "type": str(err.get("type", "")),
            }
        )
    return out


def install(app: FastAPI) -> None:
    """Render errors as problems, and put the Problem schema that :data:`PROBLEM_RESPONSES`
    refers to in the app's OpenAPI document (routers are included with those responses)."""
    _document_problem(app)

    @app.exception_handler(OpenPartnerError)
    async def _domain(request: Request, exc: OpenPartnerError) -> JSONResponse:
        return problem_response(exc, request)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem_response(validation_problem(exc.errors()), request)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        error = OpenPartnerError(str(exc.detail), code=_http_code(exc.status_code))
        body = error.problem(instance=request.url.path)
        body.update(status=exc.status_code, title=str(exc.detail))
        return JSONResponse(
            body, status_code=exc.status_code, media_type=PROBLEM, headers=exc.headers
        )

    @app.exception_handler(IntegrityError)
    async def _integrity(request: Request, exc: IntegrityError) -> JSONResponse:
        return problem_response(database_problem(exc, request.url.path), request)

    @app.exception_handler(OperationalError)
    async def _db_down(request: Request, exc: OperationalError) -> JSONResponse:
        return problem_response(database_problem(exc, request.url.path), request)


def _document_problem(app: FastAPI) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            schemas.update(schema.pop("$defs", {}))
            schemas[Problem.__name__] = schema
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]


INPUT_LIMITS = {
    "control_character": "A text holds a control character.",
    "nesting_too_deep": "The request is nested too deeply.",
    "timestamp_out_of_range": "A timestamp is out of range.",
}
"""Field error types of the input rules (api/schemas.py): a request refused by one rule only
is answered with that rule as its ``code``."""
FIELD_RULES = {
    "invalid_model": "Unknown attribution model.",
    "invalid_window": "The attribution window is out of range.",
}
"""Field error types of single fields with a code of their own (programs/schemas.py), answered
the same way."""


def validation_problem(errors: Sequence[Any]) -> OpenPartnerError:
    """A request that failed validation: ``errors`` as pydantic (and FastAPI) report them."""
    fields = _field_errors(errors)
    if any(e["type"] == "json_invalid" for e in fields):
        return BadRequest(
            "The request body is not valid JSON.", code="malformed_json", errors=fields
        )
    kinds = {e["type"] for e in fields}
    if len(kinds) == 1 and (kind := kinds.pop()) in INPUT_LIMITS | FIELD_RULES:
        return ValidationFailed((INPUT_LIMITS | FIELD_RULES)[kind], code=kind, errors=fields)
    return ValidationFailed("The request is not valid.", errors=fields)


def database_problem(exc: IntegrityError | OperationalError, path: str) -> OpenPartnerError:
    """What a client sees of a database error a service did not turn into one of its own."""
    if isinstance(exc, IntegrityError):
        # Services check uniqueness first; this catches the race between check and commit.
        log.info("integrity conflict on %s: %s", path, exc.orig)
        return Conflict("The resource conflicts with an existing one.", code="duplicate")
    log.warning("database unavailable on %s: %s", path, exc.orig)
    return ServiceUnavailable(
        "The database is unavailable; retry later.",
        code="database_unavailable",
        headers={"Retry-After": "1"},
    )


def _http_code(status: int) -> str:
    return {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(
        status, "http_error"
    )
