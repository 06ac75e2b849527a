"""Keeps the local Stripe server honest: its objects have Stripe's fields and types.

The comparison is with Stripe's published example objects (``../shared/stripe/fixtures3.json``).
A clone without that file skips the comparison, but the built-in shapes the server then uses are
still exercised end to end.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import stripe

from tests.stripe_server import (
    FIXTURES_PATH,
    Shapes,
    StripeServer,
    make_charge,
    make_checkout_session,
    make_customer,
    make_discount,
    make_event,
    make_invoice,
    make_promotion_code,
)
from tests.stripe_server.shapes import BUILTIN, Obj

needs_fixtures = pytest.mark.skipif(
    not FIXTURES_PATH.is_file(),
    reason=f"Stripe's example objects are not at {FIXTURES_PATH} (a clone outside the "
    "project's workspace); the field-by-field comparison with Stripe needs them.",
)

FREE_FORM = {"metadata", "capabilities", "source_types", "previous_attributes", "object"}
"""Maps whose keys are data, not schema (``event.data.object`` is compared by its own kind)."""


def field_problems(actual: Any, example: Any, path: str = "", *, subset: bool = False) -> list[str]:
    """Where ``actual`` has other fields or types than Stripe's ``example``.

    ``subset``: ``actual`` may leave fields out (the built-in shapes) but never add one.
    """
    if actual is None or example is None:
        return []  # Stripe's examples show nullable fields as null; either side may be set
    if isinstance(example, dict) and isinstance(actual, dict):
        if path.rsplit(".", 1)[-1] in FREE_FORM:
            return []
        problems = [f"{path}.{k}: not a Stripe field" for k in actual.keys() - example.keys()]
        if not subset:
            problems += [f"{path}.{k}: missing" for k in example.keys() - actual.keys()]
        for key in actual.keys() & example.keys():
            problems += field_problems(actual[key], example[key], f"{path}.{key}", subset=subset)
        return problems
    if isinstance(example, list) and isinstance(actual, list):
        if not example or not isinstance(example[0], dict):
            return []
        return [
            p
            for item in actual
            for p in field_problems(item, example[0], f"{path}[]", subset=subset)
        ]
    if _json_type(actual) != _json_type(example):
        return [f"{path}: {_json_type(actual)}, Stripe sends {_json_type(example)}"]
    return []


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def _raw(obj: stripe.StripeObject) -> Obj:
    """The JSON the server actually sent for ``obj``."""
    assert obj.last_response is not None
    body: Obj = json.loads(obj.last_response.body)
    return body


def _served(api: stripe.StripeClient, server: StripeServer) -> list[tuple[str, Obj]]:
    """One of every kind of object the server answers with, from a realistic Connect flow."""
    account = api.v1.accounts.create(
        {"type": "express", "capabilities": {"transfers": {"requested": True}}}
    )
    link = api.v1.account_links.create(
        {"account": account.id, "type": "account_onboarding", "return_url": "https://x.example"}
    )
    httpx.get(link.url)  # onboarding completes
    transfer = api.v1.transfers.create(
        {"amount": 1100, "currency": "usd", "destination": account.id, "transfer_group": "g"}
    )
    reversal = api.v1.transfers.reversals.create(transfer.id, {"amount": 100})
    return [
        ("account", _raw(account)),
        ("account", _raw(api.v1.accounts.retrieve(account.id))),
        ("account_link", _raw(link)),
        ("transfer", _raw(transfer)),
        ("transfer", _raw(api.v1.transfers.retrieve(transfer.id))),
        ("transfer_reversal", _raw(reversal)),
        ("balance", _raw(api.v1.balance.retrieve())),
        *[("event", event) for event in server.events()],
    ]


BUILDERS: dict[str, Callable[[Shapes], Obj]] = {
    "customer": lambda s: make_customer(shapes=s),
    "promotion_code": lambda s: make_promotion_code("PARTNER20", shapes=s),
    "discount": lambda s: make_discount(promotion_code="promo_1", shapes=s),
    "checkout.session": lambda s: make_checkout_session(promotion_code="promo_1", shapes=s),
    "invoice": lambda s: make_invoice(discounts=["di_1"], amount_discount=100, shapes=s),
    "charge": lambda s: make_charge(amount_refunded=100, shapes=s),
    "event": lambda s: make_event("customer.created", make_customer(shapes=s), shapes=s),
}


def _problems(kind: str, obj: Obj, examples: Shapes, *, subset: bool = False) -> list[str]:
    obj = dict(obj)
    if kind == "event":
        # Stripe adds ``account`` only to a connected account's events and
        # ``data.previous_attributes`` only to ``*.updated`` ones; the example is neither.
        obj.pop("account", None)
        obj["data"] = {k: v for k, v in obj["data"].items() if k != "previous_attributes"}
        inner = obj["data"]["object"]
        inner_kind = inner["object"]
        found = _problems(inner_kind, inner, examples, subset=subset) if inner_kind else []
    else:
        found = []
    return found + field_problems(obj, examples.template(kind), kind, subset=subset)


@needs_fixtures
def test_server_objects_have_stripes_fields_and_types(
    stripe_api: stripe.StripeClient, stripe_server: StripeServer
) -> None:
    examples = Shapes.from_file(FIXTURES_PATH)
    served = _served(stripe_api, stripe_server)
    assert {kind for kind, _ in served} >= {"account", "transfer", "transfer_reversal", "event"}
    problems = [p for kind, obj in served for p in _problems(kind, obj, examples)]
    assert problems == []


@needs_fixtures
@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_webhook_objects_have_stripes_fields_and_types(kind: str) -> None:
    examples = Shapes.from_file(FIXTURES_PATH)
    assert _problems(kind, BUILDERS[kind](examples), examples) == []


@needs_fixtures
def test_built_in_shapes_only_use_stripes_fields() -> None:
    examples = Shapes.from_file(FIXTURES_PATH)
    problems = [
        p
        for kind, shape in BUILTIN.items()
        for p in field_problems(shape, examples.template(kind), kind, subset=True)
    ]
    assert problems == []


def test_field_comparison_catches_invented_missing_and_mistyped_fields() -> None:
    example = {"id": "tr_1", "amount": 1, "reversed": False, "reversals": {"data": [{"id": "x"}]}}
    actual = {"id": "tr_2", "amount": "1", "extra": 2, "reversals": {"data": [{"idd": "y"}]}}
    assert sorted(field_problems(actual, example, "t")) == [
        "t.amount: str, Stripe sends number",
        "t.extra: not a Stripe field",
        "t.reversals.data[].id: missing",
        "t.reversals.data[].idd: not a Stripe field",
        "t.reversed: missing",
    ]


def test_server_and_builders_work_on_the_built_in_shapes() -> None:
    with StripeServer(shapes=Shapes.builtin()) as bare:
        api = stripe.StripeClient(bare.secret_key, base_addresses={"api": bare.url})
        served = _served(api, bare)
        examples = Shapes.builtin()
        # Without Stripe's examples, the server's objects still match its own shapes exactly.
        assert [p for kind, obj in served for p in _problems(kind, obj, examples)] == []
    for kind, build in BUILDERS.items():
        assert _problems(kind, build(examples), examples) == [], kind
