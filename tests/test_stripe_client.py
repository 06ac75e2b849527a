"""The product's Stripe seam: configuration, one client builder, failure classification."""

from __future__ import annotations

from typing import Any

import pytest
import stripe
from pydantic import SecretStr

from openpartner.integrations.stripe import (
    StripeNotConfigured,
    classify,
    is_configured,
    stripe_client,
    webhook_secrets,
)
from openpartner.settings import Settings
from tests.stripe_server import FaultKind, StripeServer


def test_settings_read_stripe_options_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_123")
    monkeypatch.setenv("STRIPE_API_BASE", "http://127.0.0.1:9999/")
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRETS", " whsec_new , ,whsec_old ")
    monkeypatch.setenv("STRIPE_TIMEOUT_SECONDS", "2.5")
    settings = Settings(_env_file=None)
    assert is_configured(settings)
    assert settings.stripe_api_base == "http://127.0.0.1:9999/"
    assert settings.stripe_timeout_seconds == 2.5
    assert webhook_secrets(settings) == ["whsec_new", "whsec_old"]


@pytest.mark.parametrize("key", [None, "", "   "])
def test_without_a_secret_key_stripe_is_not_configured(key: str | None) -> None:
    settings = Settings(_env_file=None, stripe_secret_key=None if key is None else SecretStr(key))
    assert not is_configured(settings)
    assert webhook_secrets(settings) == []
    with pytest.raises(StripeNotConfigured) as caught:
        stripe_client(settings)
    assert (caught.value.status, caught.value.code) == (503, "stripe_not_configured")


def test_client_talks_to_the_configured_base_with_the_secret_key(
    stripe_settings: Settings, stripe_server: StripeServer
) -> None:
    api = stripe_client(stripe_settings)
    assert api.v1.balance.retrieve().object == "balance"
    (request,) = stripe_server.requests
    assert (request.method, request.path, request.status) == ("GET", "/v1/balance", 200)
    assert request.headers["Authorization"] == f"Bearer {stripe_server.secret_key}"


def test_client_never_retries_by_itself(
    stripe_settings: Settings, stripe_server: StripeServer
) -> None:
    stripe_server.fail_next("drop_after_create", path="/v1/accounts")
    with pytest.raises(stripe.APIConnectionError):
        stripe_client(stripe_settings).v1.accounts.create({"type": "express"})
    assert len(stripe_server.requests) == 1 and len(stripe_server.accounts()) == 1


@pytest.mark.parametrize(
    ("fault", "options", "error", "status", "outcome"),
    [
        ("drop_after_create", {}, stripe.APIConnectionError, None, "ambiguous"),
        ("http_500", {}, stripe.APIError, 500, "ambiguous"),
        ("permanent_error", {"status": 503}, stripe.APIError, 503, "ambiguous"),
        ("permanent_error", {"status": 409}, stripe.StripeError, 409, "ambiguous"),
        ("http_429", {}, stripe.RateLimitError, 429, "ambiguous"),
        ("permanent_error", {}, stripe.InvalidRequestError, 400, "permanent"),
        ("permanent_error", {"status": 404}, stripe.InvalidRequestError, 404, "permanent"),
        ("permanent_error", {"status": 401}, stripe.AuthenticationError, 401, "permanent"),
        ("permanent_error", {"status": 402}, stripe.CardError, 402, "permanent"),
        ("permanent_error", {"status": 403}, stripe.PermissionError, 403, "permanent"),
    ],
)
def test_classify_sorts_failures_into_ambiguous_and_permanent(
    stripe_api: stripe.StripeClient,
    stripe_server: StripeServer,
    fault: FaultKind,
    options: dict[str, Any],
    error: type[stripe.StripeError],
    status: int | None,
    outcome: str,
) -> None:
    stripe_server.fail_next(fault, path="/v1/accounts", **options)
    with pytest.raises(error) as caught:
        stripe_api.v1.accounts.create({"type": "express"})
    failure = classify(caught.value)
    assert (failure.outcome, failure.status) == (outcome, status)
    assert failure.ambiguous is (outcome == "ambiguous")


def test_reusing_a_key_with_other_params_is_ambiguous_not_a_release(
    stripe_api: stripe.StripeClient,
) -> None:
    stripe_api.v1.accounts.create({"type": "express"}, {"idempotency_key": "k"})
    with pytest.raises(stripe.IdempotencyError) as caught:
        stripe_api.v1.accounts.create({"type": "custom"}, {"idempotency_key": "k"})
    assert classify(caught.value).ambiguous


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"Retry-After": "0.5"}, 0.5),
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, None),
        ({}, None),
    ],
)
def test_classify_reads_retry_after(headers: dict[str, str], seconds: float | None) -> None:
    error = stripe.RateLimitError("slow down", http_status=429, headers=headers)
    assert classify(error).retry_after == seconds
