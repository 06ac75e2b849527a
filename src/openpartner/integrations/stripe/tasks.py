"""Handle stored Stripe events (a job per event). For Stripe-sourced data the customer id is
Stripe's own ``cus_…`` id; merchants identify with it (or Stripe carries our click id).

- ``checkout.session.completed`` with ``client_reference_id`` = a click id → identify, a
  ``signup``, and a ``sale`` for one-time payments (subscriptions are sold by ``invoice.paid``);
- ``invoice.paid`` → ``sale`` of ``amount_paid`` (already minor units: JPY has none);
- ``charge.refunded`` → ``refund`` of the newly refunded part (partial refunds accumulate);
- ``customer.created`` with ``metadata.openpartner_click_id`` → identify.
Promotion codes on the session or invoice attribute to the partner that owns them.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.orm import Session

from openpartner.api.errors import validation_problem
from openpartner.attribution.service import rederive_customer
from openpartner.clicks.models import Click
from openpartner.core.errors import OpenPartnerError
from openpartner.core.time import utc_now
from openpartner.coupons.models import PromotionCode
from openpartner.db.sums import combine, money_sum
from openpartner.events.models import Event
from openpartner.events.schemas import EventIn
from openpartner.events.service import ingest
from openpartner.identity.models import IdentityEdge
from openpartner.identity.service import bind, email_hash
from openpartner.integrations.stripe import connect
from openpartner.integrations.stripe.minimize import customer_email
from openpartner.integrations.stripe.models import StripeEvent
from openpartner.programs.models import Program
from openpartner.settings import get_settings
from openpartner.worker.queue import task

log = logging.getLogger(__name__)


@task("stripe.handle_event")
def handle_event(session: Session, payload: dict[str, Any]) -> None:
    stored = session.get_one(StripeEvent, payload["stripe_event_id"])
    if stored.handled_at is not None:
        return
    event = stored.payload
    obj = event.get("data", {}).get("object", {})
    handler = HANDLERS.get(event["type"])
    if handler is not None:
        try:
            handler(session, event, obj)
        except OpenPartnerError as exc:
            # Bad data from Stripe (too old, unknown sale...) will not improve with retries.
            log.warning("stripe event %s not applied: %s (%s)", event["id"], exc.detail, exc.code)
    stored.handled_at = utc_now()


def _email_hash(obj: dict[str, Any]) -> str | None:
    """The customer's email hash stored in place of the email (``minimize.py``); an event
    stored before that kept the email itself."""
    hashed = obj.get("email_hash")
    if isinstance(hashed, str):
        return hashed
    email = customer_email(obj)
    return email_hash(email) if email is not None else None


def _created(event: dict[str, Any]) -> datetime:
    return (
        datetime.fromtimestamp(int(event.get("created") or 0), UTC)
        if event.get("created")
        else utc_now()
    )


def _program(
    session: Session, obj: dict[str, Any], click_id: str | None, customer: str | None
) -> Program | None:
    program_id = (obj.get("metadata") or {}).get("openpartner_program_id")
    if not program_id and click_id:
        program_id = session.scalar(sa.select(Click.program_id).where(Click.id == click_id))
    if not program_id and customer:
        program_id = session.scalar(
            sa.select(IdentityEdge.program_id).where(IdentityEdge.customer_id == customer).limit(1)
        )
    if not program_id:
        program_id = get_settings().stripe_program_id or None
    if not program_id:
        only = session.scalars(sa.select(Program.id).limit(2)).all()
        program_id = only[0] if len(only) == 1 else None
    return session.get(Program, program_id) if program_id else None


def _promotion_code(session: Session, program: Program, obj: dict[str, Any]) -> str | None:
    ids: list[str] = []
    for discount in obj.get("discounts") or []:
        if isinstance(discount, dict) and isinstance(discount.get("promotion_code"), str):
            ids.append(discount["promotion_code"])
    legacy = obj.get("discount")
    if isinstance(legacy, dict) and isinstance(legacy.get("promotion_code"), str):
        ids.append(legacy["promotion_code"])
    if not ids:
        return None
    return session.scalar(
        sa.select(PromotionCode.code).where(
            PromotionCode.program_id == program.id,
            PromotionCode.stripe_promotion_code_id.in_(ids),
        )
    )


def _record(session: Session, program: Program, key: str, **fields: Any) -> None:
    try:
        body = EventIn(**fields)
    except ValidationError as exc:  # held to the API's input rules (a 1970 time, a NUL...)
        raise validation_problem(exc.errors()) from None
    ingest(session, program, body, key, get_settings(), source="stripe")


def _checkout_completed(session: Session, event: dict[str, Any], obj: dict[str, Any]) -> None:
    click_id = obj.get("client_reference_id")
    customer = obj.get("customer")
    if not isinstance(customer, str) or not customer:
        return
    program = _program(session, obj, click_id, customer)
    if program is None:
        return
    if isinstance(click_id, str) and click_id.startswith("clk_"):
        result = bind(
            session,
            program,
            customer_id=customer,
            click_id=click_id,
            hashed_email=_email_hash(obj),
            source="stripe",
        )
        if result.new_binding:
            rederive_customer(session, program.id, customer)
    at = _created(event)
    _record(
        session,
        program,
        f"stripe:{obj['id']}:signup",
        type="signup",
        customer_id=customer,
        occurred_at=at,
    )
    if (
        obj.get("mode") == "payment"
        and obj.get("payment_status") == "paid"
        and obj.get("amount_total")
    ):
        _record(
            session,
            program,
            f"stripe:pi:{obj.get('payment_intent') or obj['id']}",
            type="sale",
            customer_id=customer,
            amount=int(obj["amount_total"]),
            currency=str(obj["currency"]).upper(),
            occurred_at=at,
            promotion_code=_promotion_code(session, program, obj),
        )


def _invoice_paid(session: Session, event: dict[str, Any], obj: dict[str, Any]) -> None:
    customer = obj.get("customer")
    if not isinstance(customer, str) or not obj.get("amount_paid"):
        return
    program = _program(session, obj, None, customer)
    if program is None:
        return
    paid_at = (obj.get("status_transitions") or {}).get("paid_at")
    at = datetime.fromtimestamp(int(paid_at), UTC) if paid_at else _created(event)
    _record(
        session,
        program,
        f"stripe:in:{obj['id']}",
        type="sale",
        customer_id=customer,
        amount=int(obj["amount_paid"]),
        currency=str(obj["currency"]).upper(),
        occurred_at=at,
        promotion_code=_promotion_code(session, program, obj),
    )


def _charge_refunded(session: Session, event: dict[str, Any], obj: dict[str, Any]) -> None:
    keys = []
    if isinstance(obj.get("invoice"), str):
        keys.append(f"stripe:in:{obj['invoice']}")
    if isinstance(obj.get("payment_intent"), str):
        keys.append(f"stripe:pi:{obj['payment_intent']}")
    sale = (
        session.scalar(sa.select(Event).where(Event.type == "sale", Event.external_id.in_(keys)))
        if keys
        else None
    )
    if sale is None:
        return
    refunded_before = combine(
        *session.execute(
            sa.select(*money_sum(Event.amount)).where(Event.refund_of == sale.id)
        ).one()
    )
    newly = int(obj.get("amount_refunded") or 0) - refunded_before
    if newly <= 0:
        return
    program = session.get_one(Program, sale.program_id)
    _record(
        session,
        program,
        f"stripe:{event['id']}",
        type="refund",
        refund_of=sale.id,
        amount=newly,
        occurred_at=_created(event),
    )


def _customer_created(session: Session, event: dict[str, Any], obj: dict[str, Any]) -> None:
    click_id = (obj.get("metadata") or {}).get("openpartner_click_id")
    if not isinstance(click_id, str) or not click_id.startswith("clk_"):
        return
    program = _program(session, obj, click_id, None)
    if program is None:
        return
    result = bind(
        session,
        program,
        customer_id=obj["id"],
        click_id=click_id,
        hashed_email=_email_hash(obj),
        source="stripe",
    )
    if result.new_binding:
        rederive_customer(session, program.id, obj["id"])


HANDLERS = {
    "checkout.session.completed": _checkout_completed,
    "invoice.paid": _invoice_paid,
    "charge.refunded": _charge_refunded,
    "customer.created": _customer_created,
    "account.updated": connect.on_account_updated,
    "transfer.reversed": connect.on_transfer_reversed,
}
