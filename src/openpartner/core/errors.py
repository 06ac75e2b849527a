"""One error type for everything a client can cause, rendered as RFC 9457 problem+json.

    OpenPartnerError (status, code)
    ├── BadRequest            400  e.g. malformed_json, invalid_cursor
    ├── Unauthorized          401  missing_api_key, invalid_api_key
    ├── Forbidden             403  missing_scope, origin_not_allowed
    ├── NotFound              404  not_found
    ├── Conflict              409  duplicate, idempotency_conflict, invalid_state
    ├── Gone                  410  archived
    ├── PayloadTooLarge       413  body_too_large
    ├── ValidationFailed      422  validation_error, invalid_currency, invalid_amount, ...
    ├── RateLimited           429  rate_limited
    └── ServiceUnavailable    503  not_configured, database_unavailable, overloaded

Domain errors subclass these next to their service. ``code`` is stable and machine-readable;
``detail`` is for humans; ``errors`` carries field-level details (``loc``, ``msg``, ``type``).
"""

from __future__ import annotations

from typing import Any, ClassVar


class OpenPartnerError(Exception):
    status: ClassVar[int] = 400
    default_code: ClassVar[str] = "bad_request"
    title: ClassVar[str] = "Bad request"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code or self.default_code
        self.errors = errors or []
        self.headers = headers or {}

    def problem(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"https://openpartner.dev/problems/{self.code}",
            "title": self.title,
            "status": self.status,
            "code": self.code,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        if self.errors:
            body["errors"] = self.errors
        return body


class BadRequest(OpenPartnerError):
    pass


class Unauthorized(OpenPartnerError):
    status = 401
    default_code = "invalid_api_key"
    title = "Unauthorized"


class Forbidden(OpenPartnerError):
    status = 403
    default_code = "forbidden"
    title = "Forbidden"


class NotFound(OpenPartnerError):
    status = 404
    default_code = "not_found"
    title = "Not found"


class Conflict(OpenPartnerError):
    status = 409
    default_code = "conflict"
    title = "Conflict"


class Gone(OpenPartnerError):
    status = 410
    default_code = "gone"
    title = "Gone"


class PayloadTooLarge(OpenPartnerError):
    status = 413
    default_code = "body_too_large"
    title = "Payload too large"


class ValidationFailed(OpenPartnerError):
    status = 422
    default_code = "validation_error"
    title = "Validation failed"


class RateLimited(OpenPartnerError):
    status = 429
    default_code = "rate_limited"
    title = "Too many requests"


class ServiceUnavailable(OpenPartnerError):
    status = 503
    default_code = "service_unavailable"
    title = "Service unavailable"
