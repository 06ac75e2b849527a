"""Injected faults, seen through the product's client and its failure classification."""

from __future__ import annotations

import time

import pytest
import stripe

from openpartner.integrations.stripe import classify, stripe_client
from openpartner.settings import Settings
from tests.stripe_server import StripeServer


@pytest.fixture
def account(stripe_server: StripeServer) -> str:
    return str(stripe_server.create_account(ready=True)["id"])


def _pay(api: stripe.StripeClient, account: str, key: str, amount: int = 2500) -> stripe.Transfer:
    return api.v1.transfers.create(
        {"amount": amount, "currency": "usd", "destination": account, "transfer_group": "pay_1"},
        {"idempotency_key": key},
    )


def test_lost_response_after_create_then_retry_with_same_key_gives_exactly_one_transfer(
    stripe_settings: Settings, stripe_server: StripeServer, account: str
) -> None:
    impatient = stripe_client(stripe_settings.model_copy(update={"stripe_timeout_seconds": 0.3}))
    stripe_server.fail_next("timeout_after_create", path="/v1/transfers")
    started = time.monotonic()
    with pytest.raises(stripe.APIConnectionError) as caught:
        _pay(impatient, account, "payout-pay_1")
    assert time.monotonic() - started < 3  # the client's own timeout, not the server's hold
    assert classify(caught.value).ambiguous

    (made,) = stripe_server.transfers()  # Stripe did create it
    found = impatient.v1.transfers.list({"transfer_group": "pay_1"}).data
    assert [t.id for t in found] == [made["id"]]  # reconciliation by transfer_group sees it
    retried = _pay(impatient, account, "payout-pay_1")
    assert retried.id == made["id"]
    assert len(stripe_server.transfers()) == 1


def test_dropped_connection_after_create_is_a_network_error_and_the_transfer_exists(
    stripe_api: stripe.StripeClient, stripe_server: StripeServer, account: str
) -> None:
    stripe_server.fail_next("drop_after_create", path="/v1/transfers")
    with pytest.raises(stripe.APIConnectionError) as caught:
        _pay(stripe_api, account, "payout-pay_1")
    assert classify(caught.value).outcome == "ambiguous"
    assert len(stripe_server.transfers()) == 1
    assert _pay(stripe_api, account, "payout-pay_1").id == stripe_server.transfers()[0]["id"]


def test_500_creates_nothing_and_the_same_key_then_succeeds(
    stripe_api: stripe.StripeClient, stripe_server: StripeServer, account: str
) -> None:
    stripe_server.fail_next("http_500", path="/v1/transfers")
    with pytest.raises(stripe.APIError) as caught:
        _pay(stripe_api, account, "payout-pay_1")
    failure = classify(caught.value)
    assert (failure.outcome, failure.status) == ("ambiguous", 500)
    assert stripe_server.transfers() == []
    assert len(stripe_server.requests) == 1  # the library did not retry on its own
    assert _pay(stripe_api, account, "payout-pay_1").amount == 2500
    assert len(stripe_server.transfers()) == 1


def test_429_then_success_with_retry_after(
    stripe_api: stripe.StripeClient, stripe_server: StripeServer, account: str
) -> None:
    fault = stripe_server.fail_next("http_429", path="/v1/transfers", times=2, retry_after=3)
    for _ in range(2):
        with pytest.raises(stripe.RateLimitError) as caught:
            _pay(stripe_api, account, "payout-pay_1")
        failure = classify(caught.value)
        assert (failure.outcome, failure.status, failure.retry_after) == ("ambiguous", 429, 3.0)
        assert failure.code == "rate_limit"
    assert fault.hits == 2
    transfer = _pay(stripe_api, account, "payout-pay_1")
    assert [t["id"] for t in stripe_server.transfers()] == [transfer.id]


def test_permanent_error_is_classified_permanent_and_kept_under_its_key(
    stripe_api: stripe.StripeClient, stripe_server: StripeServer, account: str
) -> None:
    stripe_server.fail_next("permanent_error", path="/v1/transfers", param="destination")
    with pytest.raises(stripe.InvalidRequestError) as caught:
        _pay(stripe_api, account, "payout-pay_1")
    failure = classify(caught.value)
    assert (failure.outcome, failure.status, failure.code) == ("permanent", 400, "account_invalid")
    with pytest.raises(stripe.InvalidRequestError):  # Stripe replays an executed refusal
        _pay(stripe_api, account, "payout-pay_1")
    assert stripe_server.requests[-1].replayed is True
    assert stripe_server.transfers() == []


def test_faults_match_only_their_method_and_path(
    stripe_api: stripe.StripeClient, stripe_server: StripeServer, account: str
) -> None:
    stripe_server.fail_next("http_500", path="/v1/transfers/*/reversals")
    transfer = _pay(stripe_api, account, "k1")  # not matched: succeeds
    assert stripe_api.v1.transfers.retrieve(transfer.id).id == transfer.id  # GET: not matched
    with pytest.raises(stripe.APIError):
        stripe_api.v1.transfers.reversals.create(transfer.id)
    assert stripe_api.v1.transfers.reversals.create(transfer.id).amount == 2500


def test_reset_forgets_faults_and_objects(stripe_server: StripeServer, account: str) -> None:
    stripe_server.fail_next("http_500")
    stripe_server.reset()
    assert stripe_server.accounts() == [] and stripe_server.faults.take("POST", "/") is None
