"""Transfers to connected accounts and their reversals, with the checks Stripe makes.

A transfer needs a destination whose ``transfers`` capability is ``active``
(``insufficient_capabilities_for_transfer`` otherwise) and enough platform balance in its currency
(``balance_insufficient``). It moves the amount out of the platform balance; a reversal moves it
back and emits ``transfer.reversed``.
"""

from __future__ import annotations

import copy

from tests.stripe_server import errors, params
from tests.stripe_server.connect import get_account
from tests.stripe_server.errors import StripeApiError
from tests.stripe_server.params import Params
from tests.stripe_server.shapes import Obj, new_id, stripe_list
from tests.stripe_server.store import RequestInfo, Store, created_filter, public, stored

_CREATE_FIELDS = (
    "amount",
    "currency",
    "destination",
    "transfer_group",
    "metadata",
    "description",
    "source_transaction",
    "source_type",
)


def create_transfer(store: Store, query: Params, request: RequestInfo) -> Obj:
    params.only(query, _CREATE_FIELDS)
    amount = params.integer(query, "amount", required=True, minimum=1)
    currency = params.currency(query)
    destination = params.string(query, "destination", required=True)
    assert amount is not None and destination is not None
    account = get_account(store, destination, param="destination", status=400)
    if account["capabilities"].get("transfers") != "active":
        raise StripeApiError(
            400,
            "Your destination account needs to have at least one of the following capabilities "
            "enabled: transfers, crypto_transfers, legacy_payments",
            code="insufficient_capabilities_for_transfer",
            param="destination",
        )
    if store.available(currency) < amount:
        raise StripeApiError(
            400,
            "You have insufficient available funds in your Stripe account. Try adding funds "
            "directly to your available balance by creating Charges using the 4000000000000077 "
            "test card. See: https://stripe.com/docs/testing#available-balance",
            code="balance_insufficient",
        )
    transfer_id = new_id("tr")
    transfer = store.shapes.build(
        "transfer",
        id=transfer_id,
        amount=amount,
        amount_reversed=0,
        balance_transaction=new_id("txn"),
        created=store.now(),
        currency=currency,
        description=params.string(query, "description"),
        destination=destination,
        destination_payment=new_id("py", 14),
        metadata=params.metadata(query),
        reversals=stripe_list(f"/v1/transfers/{transfer_id}/reversals"),
        reversed=False,
        source_transaction=params.string(query, "source_transaction"),
        source_type=params.string(query, "source_type") or "card",
        transfer_group=params.string(query, "transfer_group"),
    )
    store.move_balance(currency, -amount)
    store.transfers[transfer_id] = stored(transfer, store.sequence())
    store.emit("transfer.created", transfer, request=request)
    return public(transfer)


def get_transfer(store: Store, transfer_id: str) -> Obj:
    transfer = store.transfers.get(transfer_id)
    if transfer is None:
        raise errors.no_such("transfer", transfer_id)
    return transfer


def retrieve_transfer(store: Store, transfer_id: str) -> Obj:
    return public(get_transfer(store, transfer_id))


def update_transfer(store: Store, transfer_id: str, query: Params, request: RequestInfo) -> Obj:
    transfer = get_transfer(store, transfer_id)
    params.only(query, ("description", "metadata"))
    before = copy.deepcopy(transfer)
    if "description" in query:
        transfer["description"] = params.string(query, "description")
    transfer["metadata"] = params.metadata(query, transfer["metadata"])
    if public(transfer) != public(before):
        store.emit("transfer.updated", transfer, previous=before, request=request)
    return public(transfer)


def list_transfers(store: Store, query: Params) -> Obj:
    params.only(
        query,
        ("limit", "starting_after", "ending_before", "created", "destination", "transfer_group"),
    )
    destination = params.string(query, "destination")
    group = params.string(query, "transfer_group")
    keep = created_filter(query)
    items = [
        t
        for t in store.transfers.values()
        if (destination is None or t["destination"] == destination)
        and (group is None or t["transfer_group"] == group)
        and keep(t)
    ]
    return store.page(items, query, "/v1/transfers", "transfer")


def create_reversal(
    store: Store, transfer_id: str, query: Params, request: RequestInfo
) -> tuple[Obj, Obj]:
    """Reverse (part of) a transfer: returns the reversal and the ``transfer.reversed`` event."""
    transfer = get_transfer(store, transfer_id)
    params.only(query, ("amount", "description", "metadata", "refund_application_fee"))
    remaining = transfer["amount"] - transfer["amount_reversed"]
    if remaining == 0:
        raise StripeApiError(400, f"Transfer {transfer_id} has already been fully reversed.")
    amount = params.integer(query, "amount", minimum=1)
    amount = remaining if amount is None else amount
    if amount > remaining:
        raise StripeApiError(
            400,
            f"The reversal amount ({amount}) is greater than the amount remaining on the "
            f"transfer ({remaining}).",
            param="amount",
        )
    before = copy.deepcopy(transfer)
    reversal = store.shapes.build(
        "transfer_reversal",
        id=new_id("trr"),
        amount=amount,
        balance_transaction=new_id("txn"),
        created=store.now(),
        currency=transfer["currency"],
        metadata=params.metadata(query),
        transfer=transfer_id,
    )
    transfer["amount_reversed"] += amount
    transfer["reversed"] = transfer["amount_reversed"] == transfer["amount"]
    transfer["reversals"]["data"].insert(0, reversal)
    store.move_balance(transfer["currency"], amount)
    event = store.emit("transfer.reversed", transfer, previous=before, request=request)
    return copy.deepcopy(reversal), event


def list_reversals(store: Store, transfer_id: str, query: Params) -> Obj:
    params.only(query, ("limit", "starting_after", "ending_before"))
    transfer = get_transfer(store, transfer_id)
    reversals = transfer["reversals"]["data"]
    seqs = [dict(r, _seq=len(reversals) - i) for i, r in enumerate(reversals)]
    return store.page(seqs, query, f"/v1/transfers/{transfer_id}/reversals", "transfer_reversal")
