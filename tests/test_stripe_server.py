"""The local Stripe server, driven through the official library exactly as the product drives it."""

from __future__ import annotations

from typing import Any, cast

import httpx
import pytest
import stripe

from tests.stripe_server import StripeServer
from tests.stripe_server.forms import FormError, parse_form


def _ready_account(api: stripe.StripeClient, server: StripeServer) -> str:
    account = api.v1.accounts.create(
        {"type": "express", "capabilities": {"transfers": {"requested": True}}}
    )
    server.mark_account_ready(account.id)
    return account.id


def _transfer(
    api: stripe.StripeClient, destination: str, amount: int = 1100, group: str = "pay_1", **kw: str
) -> stripe.Transfer:
    return api.v1.transfers.create(
        {"amount": amount, "currency": "usd", "destination": destination, "transfer_group": group},
        {"idempotency_key": kw["key"]} if "key" in kw else None,
    )


def test_new_account_is_not_ready_until_onboarding_completes(
    stripe_api: stripe.StripeClient, stripe_server: StripeServer
) -> None:
    account = stripe_api.v1.accounts.create(
        {
            "type": "express",
            "email": "partner@example.com",
            "capabilities": {"transfers": {"requested": True}},
            "metadata": {"partner_id": "ptn_1"},
        }
    )
    assert account.id.startswith("acct_")
    assert account.capabilities is not None and account.capabilities.transfers == "inactive"
    assert account.payouts_enabled is False
    assert account.requirements is not None and account.requirements.currently_due
    assert account.metadata is not None and account.metadata.to_dict() == {"partner_id": "ptn_1"}

    link = stripe_api.v1.account_links.create(
        {
            "account": account.id,
            "type": "account_onboarding",
            "refresh_url": "https://acme.example/refresh",
            "return_url": "https://acme.example/done",
        }
    )
    assert link.object == "account_link" and link.expires_at > link.created
    opened = httpx.get(link.url)  # the partner completes onboarding on the link's page
    assert opened.status_code == 302
    assert opened.headers["location"] == "https://acme.example/done"

    ready = stripe_api.v1.accounts.retrieve(account.id)
    assert ready.capabilities is not None and ready.capabilities.transfers == "active"
    assert ready.payouts_enabled is True and ready.details_submitted is True
    (event,) = stripe_server.events("account.updated")
    assert event["account"] == account.id
    assert event["data"]["previous_attributes"]["payouts_enabled"] is False
    assert httpx.get(link.url).status_code == 404  # a link works once


def test_account_update_merges_metadata_and_lists_newest_first(
    stripe_api: stripe.StripeClient,
) -> None:
    first = stripe_api.v1.accounts.create({"type": "express", "metadata": {"a": "1", "b": "2"}})
    second = stripe_api.v1.accounts.create({"type": "express"})
    updated = stripe_api.v1.accounts.update(first.id, {"metadata": {"a": "", "c": "3"}})
    assert updated.metadata is not None and updated.metadata.to_dict() == {"b": "2", "c": "3"}
    listed = stripe_api.v1.accounts.list({"limit": 1})
    assert [a.id for a in listed.data] == [second.id] and listed.has_more is True


def test_unknown_parameter_is_refused_like_stripe(stripe_api: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        # A typo the type checker would catch; the server must refuse it too.
        stripe_api.v1.accounts.create(cast(Any, {"type": "express", "nickname": "x"}))
    assert caught.value.code == "parameter_unknown" and caught.value.param == "nickname"


def test_transfer_to_an_account_not_ready_is_refused(stripe_api: stripe.StripeClient) -> None:
    account = stripe_api.v1.accounts.create(
        {"type": "express", "capabilities": {"transfers": {"requested": True}}}
    )
    with pytest.raises(stripe.InvalidRequestError) as caught:
        _transfer(stripe_api, account.id)
    assert caught.value.http_status == 400
    assert caught.value.code == "insufficient_capabilities_for_transfer"
    assert caught.value.param == "destination"


def test_transfer_moves_platform_balance_and_fails_when_insufficient(
    stripe_api: stripe.StripeClient, stripe_server: StripeServer
) -> None:
    account = _ready_account(stripe_api, stripe_server)
    stripe_server.set_balance("usd", 1500)
    transfer = _transfer(stripe_api, account, 1000)
    assert (transfer.amount, transfer.currency, transfer.destination) == (1000, "usd", account)
    assert transfer.transfer_group == "pay_1" and transfer.reversed is False
    balance = stripe_api.v1.balance.retrieve()
    assert [(b.currency, b.amount) for b in balance.available] == [("usd", 500)]
    with pytest.raises(stripe.InvalidRequestError) as caught:
        _transfer(stripe_api, account, 501)
    assert caught.value.code == "balance_insufficient"
    assert len(stripe_server.transfers()) == 1


def test_unknown_ids_are_404_and_a_bad_destination_is_400(
    stripe_api: stripe.StripeClient,
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe_api.v1.transfers.retrieve("tr_missing")
    assert (caught.value.http_status, caught.value.code) == (404, "resource_missing")
    with pytest.raises(stripe.InvalidRequestError) as caught:
        _transfer(stripe_api, "acct_missing")
    assert (caught.value.http_status, caught.value.param) == (400, "destination")
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe_api.v1.transfers.create({"currency": "usd", "destination": "acct_x"})
    assert (caught.value.code, caught.value.param) == ("parameter_missing", "amount")


def test_wrong_secret_key_is_an_authentication_error(stripe_server: StripeServer) -> None:
    client = stripe.StripeClient("sk_test_wrong", base_addresses={"api": stripe_server.url})
    with pytest.raises(stripe.AuthenticationError):
        client.v1.balance.retrieve()


def test_same_idempotency_key_and_params_replays_the_same_transfer(
    stripe_api: stripe.StripeClient, stripe_server: StripeServer
) -> None:
    account = _ready_account(stripe_api, stripe_server)
    first = _transfer(stripe_api, account, key="payout-pay_1")
    again = _transfer(stripe_api, account, key="payout-pay_1")
    assert again.id == first.id
    assert again.last_response is not None
    assert again.last_response.headers["Idempotent-Replayed"] == "true"
    assert len(stripe_server.transfers()) == 1


def test_same_idempotency_key_with_other_params_is_an_idempotency_error(
    stripe_api: stripe.StripeClient, stripe_server: StripeServer
) -> None:
    account = _ready_account(stripe_api, stripe_server)
    _transfer(stripe_api, account, 1100, key="payout-pay_1")
    with pytest.raises(stripe.IdempotencyError) as caught:
        _transfer(stripe_api, account, 1200, key="payout-pay_1")
    assert caught.value.http_status == 400
    assert caught.value.json_body["error"]["type"] == "idempotency_error"  # type: ignore[index]
    with pytest.raises(stripe.IdempotencyError):
        stripe_api.v1.accounts.create({"type": "express"}, {"idempotency_key": "payout-pay_1"})
    assert len(stripe_server.transfers()) == 1


def test_list_transfers_by_group_and_destination_with_pagination(
    stripe_api: stripe.StripeClient, stripe_server: StripeServer
) -> None:
    a = _ready_account(stripe_api, stripe_server)
    b = _ready_account(stripe_api, stripe_server)
    made = [_transfer(stripe_api, a, 100 + i, group="pay_A") for i in range(3)]
    other = _transfer(stripe_api, b, 999, group="pay_B")

    page = stripe_api.v1.transfers.list({"transfer_group": "pay_A", "limit": 2})
    assert [t.id for t in page.data] == [made[2].id, made[1].id] and page.has_more is True
    rest = stripe_api.v1.transfers.list(
        {"transfer_group": "pay_A", "limit": 2, "starting_after": page.data[-1].id}
    )
    assert [t.id for t in rest.data] == [made[0].id] and rest.has_more is False
    everything = stripe_api.v1.transfers.list({"transfer_group": "pay_A", "limit": 1})
    assert {t.id for t in everything.auto_paging_iter()} == {t.id for t in made}
    by_destination = stripe_api.v1.transfers.list({"destination": b})
    assert [t.id for t in by_destination.data] == [other.id]
    assert stripe_api.v1.transfers.list({"transfer_group": "pay_none"}).data == []


def test_reversal_returns_funds_and_emits_transfer_reversed(
    stripe_api: stripe.StripeClient, stripe_server: StripeServer
) -> None:
    account = _ready_account(stripe_api, stripe_server)
    stripe_server.set_balance("usd", 5000)
    transfer = _transfer(stripe_api, account, 1100)
    reversal = stripe_api.v1.transfers.reversals.create(transfer.id, {"amount": 400})
    assert (reversal.object, reversal.amount, reversal.transfer) == (
        "transfer_reversal",
        400,
        transfer.id,
    )
    event = stripe_server.reverse_transfer(transfer.id)  # the rest, from the dashboard
    assert event["type"] == "transfer.reversed"
    assert event["data"]["object"]["amount_reversed"] == 1100
    assert event["data"]["previous_attributes"]["amount_reversed"] == 400
    after = stripe_api.v1.transfers.retrieve(transfer.id)
    assert after.reversed is True and len(after.reversals.data) == 2
    assert stripe_server.balance("usd") == 5000
    with pytest.raises(stripe.InvalidRequestError):
        stripe_api.v1.transfers.reversals.create(transfer.id)
    assert [e.type for e in stripe_api.v1.events.list({"type": "transfer.*"}).data] == [
        "transfer.reversed",
        "transfer.reversed",
        "transfer.created",
    ]


def test_restricted_account_can_no_longer_receive_transfers(
    stripe_api: stripe.StripeClient, stripe_server: StripeServer
) -> None:
    account = stripe_server.create_account(ready=True, email="p@example.com")
    _transfer(stripe_api, account["id"])
    event = stripe_server.restrict_account(account["id"])
    assert event["data"]["object"]["payouts_enabled"] is False
    with pytest.raises(stripe.InvalidRequestError) as caught:
        _transfer(stripe_api, account["id"])
    assert caught.value.code == "insufficient_capabilities_for_transfer"


def test_requests_are_recorded_with_their_idempotency_keys(
    stripe_api: stripe.StripeClient, stripe_server: StripeServer
) -> None:
    account = _ready_account(stripe_api, stripe_server)
    _transfer(stripe_api, account, key="k-1")
    last = stripe_server.requests[-1]
    assert (last.method, last.path, last.idempotency_key, last.status) == (
        "POST",
        "/v1/transfers",
        "k-1",
        200,
    )
    assert last.params["amount"] == "1100"


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        (
            "amount=100&metadata[a]=1&metadata[b]=",
            {"amount": "100", "metadata": {"a": "1", "b": ""}},
        ),
        ("expand[0]=x&expand[1]=y", {"expand": ["x", "y"]}),
        ("expand[]=x&expand[]=y", {"expand": ["x", "y"]}),
        (
            "capabilities[transfers][requested]=true",
            {"capabilities": {"transfers": {"requested": "true"}}},
        ),
        ("metadata[note]=a%26b%3Dc", {"metadata": {"note": "a&b=c"}}),
    ],
)
def test_form_bodies_decode_like_stripe(raw: str, parsed: dict[str, object]) -> None:
    assert parse_form(raw) == parsed


def test_form_with_conflicting_shapes_is_refused() -> None:
    with pytest.raises(FormError):
        parse_form("metadata=x&metadata[a]=1")
