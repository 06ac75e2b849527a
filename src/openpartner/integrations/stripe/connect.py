"""Stripe Connect: onboarding partners through account links, mirroring their readiness, and
paying payouts with transfers — never twice.

A Stripe payout is committed as an intent (``processing``, idempotency key derived from the
payout id) by the run, before any call. The ``payouts.transfer`` job then

1. lists the transfers of ``transfer_group`` = the payout id: if one exists (a previous attempt
   succeeded but its result was never committed — lost response, killed worker), it settles the
   payout with it and makes no call;
2. otherwise creates the transfer with the payout's idempotency key;
3. an *ambiguous* failure (timeout, 5xx, 409, 429) leaves the payout ``processing`` and the job
   retries later (same key, reconciliation first); a *permanent* one fails the payout and
   releases its commissions for the next run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
import stripe
from sqlalchemy.orm import Session, sessionmaker

from openpartner.core.errors import ServiceUnavailable, ValidationFailed
from openpartner.integrations.stripe.client import classify, stripe_client
from openpartner.partners.models import Partner
from openpartner.payouts.models import ConnectAccount, Payout
from openpartner.payouts.service import fail_payout, lock_payout, mark_paid, record_reversal
from openpartner.settings import Settings

log = logging.getLogger(__name__)
TRANSFER_ACTOR = "job:payouts.transfer"
WEBHOOK_ACTOR = "stripe:webhook"


class StripeUnavailable(ServiceUnavailable):
    default_code = "stripe_unavailable"


class StripeRefused(ValidationFailed):
    default_code = "stripe_refused"


class TransferPending(Exception):
    """The transfer's outcome is unknown; the job is retried with the same idempotency key."""


def _error_for(exc: stripe.StripeError) -> StripeUnavailable | StripeRefused:
    failure = classify(exc)
    if failure.ambiguous:
        return StripeUnavailable("Stripe did not answer; try again.", headers={"Retry-After": "5"})
    return StripeRefused(f"Stripe refused the request: {failure.message}")


def connect_partner(
    session: Session, settings: Settings, partner: Partner, *, return_url: str, refresh_url: str
) -> tuple[ConnectAccount, str]:
    """The partner's connected account (created once) and a fresh onboarding link."""
    client = stripe_client(settings)
    account = session.get(ConnectAccount, partner.id)
    try:
        if account is None:
            created = client.v1.accounts.create(
                {
                    "type": "express",
                    "email": partner.email,
                    "capabilities": {"transfers": {"requested": True}},
                    "metadata": {
                        "openpartner_partner_id": partner.id,
                        "openpartner_program_id": partner.program_id,
                    },
                },
                # One account per partner, even when this request is retried.
                {"idempotency_key": f"openpartner-connect-{partner.id}"},
            )
            account = ConnectAccount(
                partner_id=partner.id, program_id=partner.program_id, stripe_account_id=created.id
            )
            session.add(account)
            mirror(account, created.to_dict())
            session.flush()
        link = client.v1.account_links.create(
            {
                "account": account.stripe_account_id,
                "type": "account_onboarding",
                "return_url": return_url,
                "refresh_url": refresh_url,
            }
        )
    except stripe.StripeError as exc:
        raise _error_for(exc) from exc
    return account, link.url


def mirror(account: ConnectAccount, obj: dict[str, Any]) -> None:
    """Copy readiness from a Stripe account object (``account.updated`` or an API answer)."""
    capabilities = obj.get("capabilities") or {}
    requirements = obj.get("requirements") or {}
    account.transfers_active = capabilities.get("transfers") == "active"
    account.payouts_enabled = bool(obj.get("payouts_enabled"))
    account.details_submitted = bool(obj.get("details_submitted"))
    account.disabled_reason = requirements.get("disabled_reason")


def execute_transfer(sessions: sessionmaker[Session], settings: Settings, payout_id: str) -> None:
    """Pay one Stripe payout (the ``payouts.transfer`` job); safe to run any number of times.

    No transaction is open during the calls to Stripe (on SQLite one would be the database's
    write lock): the payout is read, Stripe is asked, and the outcome is recorded in a new
    transaction that settles the payout only if it is still ``processing``. Two runs at once
    are harmless: both use the payout's idempotency key, so Stripe makes one transfer.
    """
    with sessions() as session:
        payout = session.get(Payout, payout_id)
        if payout is None or payout.status != "processing":
            return  # settled already: nothing to do, ever
        intent = _TransferIntent(
            payout.id, payout.amount, payout.currency, payout.destination, payout.idempotency_key
        )
    client = stripe_client(settings)
    try:
        existing = client.v1.transfers.list({"transfer_group": intent.payout_id, "limit": 10}).data
        transfer = existing[0] if existing else _create_transfer(client, intent)
    except stripe.StripeError as exc:
        failure = classify(exc)
        if failure.ambiguous:
            raise TransferPending(
                f"payout {intent.payout_id}: {failure.status or 'no response'} {failure.message}"
            ) from exc
        _record(
            sessions,
            intent.payout_id,
            failed=(failure.code or f"http_{failure.status}", failure.message),
        )
        return
    except StripeRefused as exc:
        _record(sessions, intent.payout_id, failed=(exc.code, exc.detail))
        return
    _record(sessions, intent.payout_id, transfer=transfer)


@dataclass(frozen=True, slots=True)
class _TransferIntent:
    payout_id: str
    amount: int
    currency: str
    destination: str | None
    idempotency_key: str


def _create_transfer(client: stripe.StripeClient, intent: _TransferIntent) -> stripe.Transfer:
    if not intent.destination:
        raise StripeRefused("The partner has no connected account.", code="not_connected")
    return client.v1.transfers.create(
        {
            "amount": intent.amount,
            "currency": intent.currency.lower(),
            "destination": intent.destination,
            "transfer_group": intent.payout_id,
            "description": f"OpenPartner payout {intent.payout_id}",
            "metadata": {"openpartner_payout_id": intent.payout_id},
        },
        {"idempotency_key": intent.idempotency_key},
    )


def _record(
    sessions: sessionmaker[Session],
    payout_id: str,
    *,
    transfer: stripe.Transfer | None = None,
    failed: tuple[str, str] | None = None,
) -> None:
    """Record Stripe's answer, unless the payout was settled meanwhile (another run, a webhook)."""
    with sessions() as session:
        payout = lock_payout(session, payout_id)
        if payout is not None and payout.status == "processing":
            if transfer is not None:
                _settle(session, payout, transfer)
            elif failed is not None:
                code, message = failed
                fail_payout(session, payout, TRANSFER_ACTOR, code=code, message=message)
        session.commit()


def _settle(session: Session, payout: Payout, transfer: stripe.Transfer) -> None:
    if transfer.amount != payout.amount or transfer.currency.upper() != payout.currency:
        # Never "fix" money silently: keep the payout processing and shout.
        raise TransferPending(
            f"payout {payout.id}: transfer {transfer.id} is {transfer.amount} "
            f"{transfer.currency}, expected {payout.amount} {payout.currency}"
        )
    mark_paid(session, payout, TRANSFER_ACTOR, transfer_id=transfer.id)
    if transfer.amount_reversed:
        record_reversal(session, payout, transfer.amount_reversed, TRANSFER_ACTOR)


def on_account_updated(session: Session, event: dict[str, Any], obj: dict[str, Any]) -> None:
    account = session.scalar(
        sa.select(ConnectAccount).where(ConnectAccount.stripe_account_id == str(obj.get("id")))
    )
    if account is not None:
        mirror(account, obj)


def on_transfer_reversed(session: Session, event: dict[str, Any], obj: dict[str, Any]) -> None:
    payout_id = obj.get("transfer_group") or (obj.get("metadata") or {}).get(
        "openpartner_payout_id"
    )
    if not isinstance(payout_id, str):
        return
    payout = lock_payout(session, payout_id)
    if payout is None or payout.provider != "stripe":
        return
    if payout.transfer_id not in (None, obj.get("id")):
        log.warning("transfer %s is not payout %s's transfer", obj.get("id"), payout.id)
        return
    if payout.status == "processing":  # reversed before we recorded it: it was paid first
        mark_paid(session, payout, WEBHOOK_ACTOR, transfer_id=str(obj["id"]))
    if payout.paid_at is not None:
        record_reversal(session, payout, int(obj.get("amount_reversed") or 0), WEBHOOK_ACTOR)
