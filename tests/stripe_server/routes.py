"""The endpoints the server implements: method + path pattern -> operation on the store."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from tests.stripe_server import connect, errors, params, transfers
from tests.stripe_server.params import Params
from tests.stripe_server.shapes import Obj
from tests.stripe_server.store import RequestInfo, Store, created_filter, public


@dataclass(frozen=True)
class Call:
    store: Store
    params: Params
    ids: tuple[str, ...]
    request: RequestInfo
    base_url: str


Handler = Callable[[Call], Obj]

_ID = r"([A-Za-z0-9_]+)"


def _list_events(call: Call) -> Obj:
    query = call.params
    params.only(query, ("limit", "starting_after", "ending_before", "created", "type", "types"))
    wanted = params.string(query, "type")
    types = query.get("types")
    keep = created_filter(query)
    items = [
        e
        for e in call.store.events.values()
        if (wanted is None or _type_matches(e["type"], wanted))
        and (not isinstance(types, list) or e["type"] in types)
        and keep(e)
    ]
    return call.store.page(items, query, "/v1/events", "event")


def _type_matches(event_type: str, pattern: str) -> bool:
    # Stripe allows one trailing wildcard: ``transfer.*``.
    if pattern.endswith(".*"):
        return event_type.startswith(pattern[:-1])
    return event_type == pattern


def _retrieve_event(call: Call) -> Obj:
    event = call.store.events.get(call.ids[0])
    if event is None:
        raise errors.no_such("event", call.ids[0])
    return public(event)


def _balance(call: Call) -> Obj:
    params.only(call.params, ())
    return call.store.balance()


ROUTES: list[tuple[str, re.Pattern[str], Handler]] = [
    (method, re.compile(f"^{pattern}$"), handler)
    for method, pattern, handler in [
        ("POST", "/v1/accounts", lambda c: connect.create_account(c.store, c.params)),
        ("GET", "/v1/accounts", lambda c: connect.list_accounts(c.store, c.params)),
        ("GET", f"/v1/accounts/{_ID}", lambda c: connect.retrieve_account(c.store, c.ids[0])),
        (
            "POST",
            f"/v1/accounts/{_ID}",
            lambda c: connect.update_account(c.store, c.ids[0], c.params, c.request),
        ),
        (
            "POST",
            "/v1/account_links",
            lambda c: connect.create_account_link(c.store, c.params, c.base_url),
        ),
        (
            "POST",
            "/v1/transfers",
            lambda c: transfers.create_transfer(c.store, c.params, c.request),
        ),
        ("GET", "/v1/transfers", lambda c: transfers.list_transfers(c.store, c.params)),
        (
            "GET",
            f"/v1/transfers/{_ID}",
            lambda c: transfers.retrieve_transfer(c.store, c.ids[0]),
        ),
        (
            "POST",
            f"/v1/transfers/{_ID}",
            lambda c: transfers.update_transfer(c.store, c.ids[0], c.params, c.request),
        ),
        (
            "POST",
            f"/v1/transfers/{_ID}/reversals",
            lambda c: transfers.create_reversal(c.store, c.ids[0], c.params, c.request)[0],
        ),
        (
            "GET",
            f"/v1/transfers/{_ID}/reversals",
            lambda c: transfers.list_reversals(c.store, c.ids[0], c.params),
        ),
        ("GET", "/v1/balance", _balance),
        ("GET", "/v1/events", _list_events),
        ("GET", f"/v1/events/{_ID}", _retrieve_event),
    ]
]


def resolve(method: str, path: str) -> tuple[Handler, tuple[str, ...]]:
    for route_method, pattern, handler in ROUTES:
        match = pattern.match(path)
        if match and route_method == method:
            return handler, match.groups()
    raise errors.unrecognized_url(method, path)
