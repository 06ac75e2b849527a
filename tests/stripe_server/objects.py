"""Stripe objects for webhook tests: events and the objects they carry, shaped like Stripe's.

Each builder starts from Stripe's published example (or the built-in shape) and sets the fields
the product reads; every other field keeps the example's value. Amounts are minor units, currencies
lower-case, as Stripe sends them. Example::

    invoice = make_invoice(amount_paid=4900, customer="cus_123", promotion_code="promo_abc")
    signed = stripe_server.sign(make_event("invoice.paid", invoice))
    client.post("/v1/integrations/stripe/webhook", content=signed.payload, headers=signed.headers)
"""

from __future__ import annotations

import time
from typing import Any

from tests.stripe_server.shapes import Obj, Shapes, default_shapes, new_id, stripe_list


def _now() -> int:
    return int(time.time())


def make_event(
    type: str,
    obj: Obj,
    *,
    previous_attributes: Obj | None = None,
    account: str | None = None,
    event_id: str | None = None,
    created: int | None = None,
    shapes: Shapes | None = None,
) -> Obj:
    """An ``event`` of ``type`` carrying ``obj``; ``account`` for a connected account's event."""
    data: Obj = {"object": obj}
    if previous_attributes is not None:
        data["previous_attributes"] = previous_attributes
    event = (shapes or default_shapes()).build(
        "event",
        id=event_id or new_id("evt"),
        created=_now() if created is None else created,
        data=data,
        type=type,
        request={"id": None, "idempotency_key": None},
    )
    if account is not None:
        event["account"] = account  # present only on events of connected accounts
    return event


def make_customer(
    *,
    email: str | None = "buyer@example.com",
    name: str | None = None,
    metadata: dict[str, str] | None = None,
    customer_id: str | None = None,
    shapes: Shapes | None = None,
) -> Obj:
    return (shapes or default_shapes()).build(
        "customer",
        id=customer_id or new_id("cus", 14),
        created=_now(),
        email=email,
        name=name,
        metadata=metadata or {},
        discount=None,
        currency=None,
        description=None,
    )


def make_promotion_code(
    code: str, *, coupon: str | None = None, shapes: Shapes | None = None
) -> Obj:
    return (shapes or default_shapes()).build(
        "promotion_code",
        {"promotion.coupon": coupon or new_id("coupon", 8), "promotion.type": "coupon"},
        id=new_id("promo"),
        code=code,
        active=True,
        created=_now(),
        customer=None,
        metadata={},
    )


def make_discount(
    *,
    promotion_code: str | None = None,
    coupon: str | None = None,
    customer: str | None = None,
    invoice: str | None = None,
    checkout_session: str | None = None,
    shapes: Shapes | None = None,
) -> Obj:
    return (shapes or default_shapes()).build(
        "discount",
        {"source.coupon": coupon or new_id("coupon", 8), "source.type": "coupon"},
        id=new_id("di"),
        promotion_code=promotion_code,
        customer=customer,
        invoice=invoice,
        checkout_session=checkout_session,
        start=_now(),
        end=None,
        subscription=None,
    )


def make_checkout_session(
    *,
    amount_total: int = 4900,
    currency: str = "usd",
    client_reference_id: str | None = None,
    customer: str | None = None,
    customer_email: str | None = "buyer@example.com",
    amount_discount: int = 0,
    promotion_code: str | None = None,
    coupon: str | None = None,
    mode: str = "payment",
    invoice: str | None = None,
    subscription: str | None = None,
    metadata: dict[str, str] | None = None,
    shapes: Shapes | None = None,
) -> Obj:
    """A completed, paid session (what ``checkout.session.completed`` carries).

    ``promotion_code``/``coupon`` fill ``discounts`` the way Stripe does: a list of ids.
    """
    discounts = (
        [{"coupon": coupon, "promotion_code": promotion_code}] if promotion_code or coupon else []
    )
    return (shapes or default_shapes()).build(
        "checkout.session",
        {
            "customer_details.email": customer_email,
            "total_details.amount_discount": amount_discount,
            "total_details.amount_shipping": 0,
            "total_details.amount_tax": 0,
        },
        id=new_id("cs_test", 58),
        created=_now(),
        amount_subtotal=amount_total + amount_discount,
        amount_total=amount_total,
        currency=currency.lower(),
        client_reference_id=client_reference_id,
        customer=customer,
        customer_email=customer_email,
        discounts=discounts,
        invoice=invoice,
        metadata=metadata or {},
        mode=mode,
        payment_intent=new_id("pi") if mode == "payment" else None,
        payment_status="paid",
        status="complete",
        subscription=subscription,
        shipping_cost=None,
        currency_conversion=None,
    )


def make_invoice(
    *,
    amount_paid: int = 4900,
    currency: str = "usd",
    customer: str = "cus_test",
    customer_email: str | None = "buyer@example.com",
    discounts: list[Any] | None = None,
    amount_discount: int = 0,
    billing_reason: str = "subscription_create",
    subscription: str | None = None,
    metadata: dict[str, str] | None = None,
    shapes: Shapes | None = None,
) -> Obj:
    """A paid invoice (what ``invoice.paid`` carries).

    ``discounts`` is Stripe's list: discount ids (as in webhooks) or discount objects (expanded,
    see ``make_discount``); ``amount_discount`` is recorded against the first of them.
    """
    invoice_id = new_id("in")
    discounts = discounts or []
    first = discounts[0] if discounts else None
    first_id = first["id"] if isinstance(first, dict) else first
    now = _now()
    subtotal = amount_paid + amount_discount
    parent = (
        {
            "quote_details": None,
            "subscription_details": {"metadata": None, "subscription": subscription},
            "type": "subscription_details",
        }
        if subscription
        else None
    )
    shapes = shapes or default_shapes()
    return shapes.build(
        "invoice",
        {
            "status_transitions.paid_at": now,
            "status_transitions.finalized_at": now,
            "?attempted": True,
            "?attempt_count": 1,
            "?last_finalization_error": None,
            "?from_invoice": None,
            "?next_payment_attempt": None,
            "?amount_shipping": 0,
            "?subtotal_excluding_tax": subtotal,
        },
        id=invoice_id,
        created=now,
        amount_due=amount_paid,
        amount_paid=amount_paid,
        amount_remaining=0,
        amount_overpaid=0,
        billing_reason=billing_reason,
        currency=currency.lower(),
        customer=customer,
        customer_email=customer_email,
        discounts=discounts,
        total_discount_amounts=(
            [{"amount": amount_discount, "discount": first_id}] if first_id else []
        ),
        lines=stripe_list(
            f"/v1/invoices/{invoice_id}/lines",
            _lines(shapes, invoice_id, subtotal, currency.lower()),
        ),
        metadata=metadata or {},
        parent=parent,
        period_start=now,
        period_end=now,
        shipping_cost=None,
        status="paid",
        subtotal=subtotal,
        total=amount_paid,
        total_excluding_tax=amount_paid,
    )


def make_charge(
    *,
    amount: int = 4900,
    amount_refunded: int = 0,
    currency: str = "usd",
    customer: str | None = "cus_test",
    payment_intent: str | None = None,
    metadata: dict[str, str] | None = None,
    shapes: Shapes | None = None,
) -> Obj:
    """A captured charge; with ``amount_refunded`` it is what ``charge.refunded`` carries."""
    charge_id = new_id("ch")
    return (shapes or default_shapes()).build(
        "charge",
        {"?transfer_data": None, "?source": None, "?failure_balance_transaction": None},
        id=charge_id,
        created=_now(),
        amount=amount,
        amount_captured=amount,
        amount_refunded=amount_refunded,
        balance_transaction=new_id("txn"),
        captured=True,
        currency=currency.lower(),
        customer=customer,
        description=None,
        metadata=metadata or {},
        paid=True,
        payment_intent=payment_intent or new_id("pi"),
        refunded=amount_refunded >= amount,
        refunds=stripe_list(f"/v1/charges/{charge_id}/refunds"),
        status="succeeded",
        transfer_group=None,
    )


def _lines(shapes: Shapes, invoice_id: str, amount: int, currency: str) -> list[Obj]:
    """One line for the whole amount, shaped like the example's line (none in built-in shapes)."""
    examples = shapes.template("invoice")["lines"]["data"]
    if not examples:
        return []
    line: Obj = examples[0]
    line.update(id=new_id("il"), invoice=invoice_id, amount=amount, currency=currency)
    line.update(subtotal=amount)
    line.update(discounts=[], discount_amounts=[], parent=None)
    return [line]
