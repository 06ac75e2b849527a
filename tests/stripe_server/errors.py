"""Errors shaped like Stripe's: ``{"error": {"type", "code", "message", "param", "doc_url"}}``.

The ``stripe`` library turns them into its own exceptions by status and type: 400/404 →
``InvalidRequestError`` (or ``IdempotencyError`` for ``type: idempotency_error``), 401 →
``AuthenticationError``, 429 → ``RateLimitError``, 5xx → ``APIError``.
"""

from __future__ import annotations

from typing import Any


class StripeApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
        saved: bool = True,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.headers = headers or {}
        self.saved = saved
        """Whether the idempotency layer keeps this result. Stripe keeps the result of every
        request that began executing, but not of one refused while validating its parameters."""

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code:
            error["code"] = self.code
            error["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        if self.param:
            error["param"] = self.param
        return {"error": error}


def missing(param: str) -> StripeApiError:
    return StripeApiError(
        400,
        f"Missing required param: {param}.",
        code="parameter_missing",
        param=param,
        saved=False,
    )


def invalid(
    param: str, message: str, code: str | None = "parameter_invalid_integer"
) -> StripeApiError:
    return StripeApiError(400, message, code=code, param=param, saved=False)


def unknown_parameter(param: str) -> StripeApiError:
    return StripeApiError(
        400,
        f"Received unknown parameter: {param}",
        code="parameter_unknown",
        param=param,
        saved=False,
    )


def no_such(kind: str, object_id: str, *, param: str = "id", status: int = 404) -> StripeApiError:
    return StripeApiError(
        status,
        f"No such {kind}: '{object_id}'",
        code="resource_missing",
        param=param,
    )


def unrecognized_url(method: str, path: str) -> StripeApiError:
    return StripeApiError(
        404,
        f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs "
        "or we can help at https://support.stripe.com/.",
        saved=False,
    )


def rate_limited(retry_after: int | None = None) -> StripeApiError:
    return StripeApiError(
        429,
        "Too many requests hit the API too quickly. We recommend an exponential backoff of "
        "your requests.",
        code="rate_limit",
        headers={"Retry-After": str(retry_after)} if retry_after is not None else {},
        saved=False,
    )


def server_error() -> StripeApiError:
    return StripeApiError(500, "An unknown error occurred", type="api_error", saved=False)


def idempotency_mismatch(key: str) -> StripeApiError:
    return StripeApiError(
        400,
        "Keys for idempotent requests can only be used with the same parameters they were first "
        f"used with. Try using a key other than '{key}' if you meant to execute a different "
        "request.",
        type="idempotency_error",
        saved=False,
    )


def idempotency_other_endpoint(key: str) -> StripeApiError:
    return StripeApiError(
        400,
        "Keys for idempotent requests can only be used for the same endpoint they were first "
        f"used for. Try using a key other than '{key}' if you meant to execute a different "
        "request.",
        type="idempotency_error",
        saved=False,
    )
