"""The shapes of the objects the local Stripe server answers with.

Objects start from Stripe's own published examples (``<repo>/../shared/stripe/fixtures3.json``,
see its README) so their fields and types are Stripe's. A clone outside this setup has no such
file, so every kind also has a small built-in shape, written here by hand: a strict subset of
Stripe's fields (``test_stripe_fidelity`` checks that), enough for everything the product reads.

``Shapes.build(kind, {"dotted.path": value}, **fields)`` copies a template and overrides fields;
overriding a field the template does not have is an error, so the server can never invent a field
Stripe does not send. A ``"?path"`` is set only where the template has it: it tidies the example
values of fields the built-in shapes leave out.
"""

from __future__ import annotations

import copy
import json
import secrets
import string
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

Obj = dict[str, Any]

FIXTURES_PATH = Path(__file__).resolve().parents[2].parent / "shared" / "stripe" / "fixtures3.json"

KINDS = (
    "account",
    "account_link",
    "balance",
    "charge",
    "checkout.session",
    "customer",
    "discount",
    "event",
    "invoice",
    "promotion_code",
    "transfer",
    "transfer_reversal",
)

_ALNUM = string.ascii_letters + string.digits


def new_id(prefix: str, length: int = 24) -> str:
    """A Stripe-looking id: ``tr_1Pgc7BB7WZ01zgkWVJfE40RX``."""
    return prefix + "_" + "".join(secrets.choice(_ALNUM) for _ in range(length))


def stripe_list(url: str, data: list[Obj] | None = None, *, has_more: bool = False) -> Obj:
    return {"object": "list", "data": data or [], "has_more": has_more, "url": url}


def _address() -> Obj:
    return {k: None for k in ("city", "country", "line1", "line2", "postal_code", "state")}


def _requirements() -> Obj:
    return {
        "alternatives": [],
        "current_deadline": None,
        "currently_due": [],
        "disabled_reason": None,
        "errors": [],
        "eventually_due": [],
        "past_due": [],
        "pending_verification": [],
    }


_DISCOUNT_SOURCE = {"coupon": None, "type": "coupon"}

BUILTIN: dict[str, Obj] = {
    "account": {
        "id": "acct_builtin",
        "object": "account",
        "business_profile": {"name": None, "url": None, "support_email": None, "mcc": None},
        "business_type": None,
        "capabilities": {},
        "charges_enabled": False,
        "controller": {"type": "account"},
        "country": "US",
        "created": 0,
        "default_currency": "usd",
        "details_submitted": False,
        "email": None,
        "external_accounts": stripe_list("/v1/accounts/acct_builtin/external_accounts"),
        "future_requirements": _requirements(),
        "metadata": {},
        "payouts_enabled": False,
        "requirements": _requirements(),
        "tos_acceptance": {"date": None, "ip": None, "user_agent": None},
        "type": "standard",
    },
    "account_link": {"object": "account_link", "created": 0, "expires_at": 0, "url": ""},
    "balance": {
        "object": "balance",
        "available": [],
        "connect_reserved": [],
        "livemode": False,
        "pending": [],
    },
    "transfer": {
        "id": "tr_builtin",
        "object": "transfer",
        "amount": 0,
        "amount_reversed": 0,
        "balance_transaction": None,
        "created": 0,
        "currency": "usd",
        "description": None,
        "destination": None,
        "destination_payment": None,
        "livemode": False,
        "metadata": {},
        "reversals": stripe_list("/v1/transfers/tr_builtin/reversals"),
        "reversed": False,
        "source_transaction": None,
        "source_type": "card",
        "transfer_group": None,
    },
    "transfer_reversal": {
        "id": "trr_builtin",
        "object": "transfer_reversal",
        "amount": 0,
        "balance_transaction": None,
        "created": 0,
        "currency": "usd",
        "destination_payment_refund": None,
        "metadata": {},
        "source_refund": None,
        "transfer": None,
    },
    "event": {
        "id": "evt_builtin",
        "object": "event",
        "api_version": None,
        "created": 0,
        "data": {"object": {}},
        "livemode": False,
        "pending_webhooks": 0,
        "request": {"id": None, "idempotency_key": None},
        "type": "",
    },
    "customer": {
        "id": "cus_builtin",
        "object": "customer",
        "address": _address(),
        "balance": 0,
        "created": 0,
        "currency": None,
        "default_source": None,
        "delinquent": False,
        "description": None,
        "discount": None,
        "email": None,
        "livemode": False,
        "metadata": {},
        "name": None,
        "phone": None,
    },
    "promotion_code": {
        "id": "promo_builtin",
        "object": "promotion_code",
        "active": True,
        "code": "",
        "created": 0,
        "customer": None,
        "livemode": False,
        "metadata": {},
        "promotion": dict(_DISCOUNT_SOURCE),
    },
    "discount": {
        "id": "di_builtin",
        "object": "discount",
        "checkout_session": None,
        "customer": None,
        "end": None,
        "invoice": None,
        "promotion_code": None,
        "source": dict(_DISCOUNT_SOURCE),
        "start": 0,
        "subscription": None,
    },
    "checkout.session": {
        "id": "cs_test_builtin",
        "object": "checkout.session",
        "amount_subtotal": None,
        "amount_total": None,
        "client_reference_id": None,
        "created": 0,
        "currency": None,
        "customer": None,
        "customer_details": {"email": None, "name": None},
        "customer_email": None,
        "discounts": None,
        "invoice": None,
        "livemode": False,
        "metadata": {},
        "mode": "payment",
        "payment_intent": None,
        "payment_status": "unpaid",
        "shipping_cost": None,
        "status": "open",
        "subscription": None,
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "currency_conversion": None,
    },
    "invoice": {
        "id": "in_builtin",
        "object": "invoice",
        "amount_due": 0,
        "amount_overpaid": 0,
        "amount_paid": 0,
        "amount_remaining": 0,
        "billing_reason": "manual",
        "created": 0,
        "currency": "usd",
        "customer": None,
        "customer_email": None,
        "discounts": [],
        "lines": stripe_list("/v1/invoices/in_builtin/lines"),
        "livemode": False,
        "metadata": {},
        "parent": None,
        "period_end": 0,
        "period_start": 0,
        "shipping_cost": None,
        "status": "draft",
        "status_transitions": {
            "finalized_at": None,
            "marked_uncollectible_at": None,
            "paid_at": None,
            "voided_at": None,
        },
        "subtotal": 0,
        "total": 0,
        "total_discount_amounts": [],
        "total_excluding_tax": 0,
    },
    "charge": {
        "id": "ch_builtin",
        "object": "charge",
        "amount": 0,
        "amount_captured": 0,
        "amount_refunded": 0,
        "balance_transaction": None,
        "captured": False,
        "created": 0,
        "currency": "usd",
        "customer": None,
        "description": None,
        "livemode": False,
        "metadata": {},
        "paid": False,
        "payment_intent": None,
        "refunded": False,
        "refunds": stripe_list("/v1/charges/ch_builtin/refunds"),
        "status": "pending",
        "transfer_group": None,
    },
}


class Shapes:
    def __init__(self, templates: Mapping[str, Obj], source: str) -> None:
        missing = [kind for kind in KINDS if kind not in templates]
        if missing:
            raise ValueError(f"{source} lacks {missing}")
        self._templates = {kind: copy.deepcopy(templates[kind]) for kind in KINDS}
        self.source = source

    @classmethod
    def from_file(cls, path: Path) -> Shapes:
        resources = json.loads(path.read_text())["resources"]
        return cls(resources, str(path))

    @classmethod
    def builtin(cls) -> Shapes:
        return cls(BUILTIN, "built-in shapes")

    def template(self, kind: str) -> Obj:
        return copy.deepcopy(self._templates[kind])

    def build(self, kind: str, nested: Mapping[str, Any] | None = None, **fields: Any) -> Obj:
        obj = self.template(kind)
        for path, value in {**(nested or {}), **fields}.items():
            optional = path.startswith("?")  # "?field": only where the template has it
            *parents, leaf = path.lstrip("?").split(".")
            node = obj
            for part in parents:
                node = node[part] if isinstance(node.get(part), dict) else {}
            if leaf in node:
                node[leaf] = copy.deepcopy(value)
            elif not optional:
                raise KeyError(f"a Stripe {kind} has no field {path!r}")
        return obj


@cache
def default_shapes() -> Shapes:
    """Stripe's published examples when present, else the built-in shapes."""
    return Shapes.from_file(FIXTURES_PATH) if FIXTURES_PATH.is_file() else Shapes.builtin()
