"""The server's state: what "Stripe" holds, plus the pieces every endpoint shares.

All state sits behind one lock: request handlers run on threads, and Stripe's guarantees (an
idempotency key executes once; a balance never goes negative) need check-and-change to be atomic.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Iterable

from tests.stripe_server import errors, params
from tests.stripe_server.params import Params
from tests.stripe_server.shapes import Obj, Shapes, new_id, stripe_list

DEFAULT_BALANCE = 10**12
"""Platform balance of a currency nobody set: large, so only tests about funds think about it."""


class RequestInfo:
    """The API request an object change came from, as Stripe puts it in ``event.request``."""

    def __init__(self, request_id: str | None = None, idempotency_key: str | None = None) -> None:
        self.id = request_id
        self.idempotency_key = idempotency_key


class Store:
    def __init__(self, shapes: Shapes, now: Callable[[], int] | None = None) -> None:
        self.shapes = shapes
        self.now = now or (lambda: int(time.time()))
        self.lock = threading.RLock()
        self.accounts: dict[str, Obj] = {}
        self.transfers: dict[str, Obj] = {}
        self.events: dict[str, Obj] = {}
        self.balances: dict[str, int] = {}
        self.onboarding: dict[str, tuple[str, str | None]] = {}
        """Account link token -> (account id, return_url), for the simulated onboarding page."""
        self._seq = 0

    # -- balance ---------------------------------------------------------------------------

    def available(self, currency: str) -> int:
        return self.balances.get(currency, DEFAULT_BALANCE)

    def move_balance(self, currency: str, delta: int) -> None:
        self.balances[currency] = self.available(currency) + delta

    def balance(self) -> Obj:
        currencies = sorted(set(self.balances) | {"usd"})
        return self.shapes.build(
            "balance",
            available=[
                {
                    "amount": self.available(c),
                    "currency": c,
                    "source_types": {"card": self.available(c)},
                }
                for c in currencies
            ],
            pending=[{"amount": 0, "currency": c, "source_types": {"card": 0}} for c in currencies],
            connect_reserved=[{"amount": 0, "currency": c} for c in currencies],
        )

    # -- events ----------------------------------------------------------------------------

    def emit(
        self,
        type: str,
        obj: Obj,
        *,
        previous: Obj | None = None,
        account: str | None = None,
        request: RequestInfo | None = None,
    ) -> Obj:
        """Record an event carrying a snapshot of ``obj`` (and what changed, from ``previous``)."""
        shown = public(obj)
        data: Obj = {"object": shown}
        if previous is not None:
            changed = {k: v for k, v in public(previous).items() if shown.get(k) != v}
            data["previous_attributes"] = changed
        request = request or RequestInfo()
        event = self.shapes.build(
            "event",
            id=new_id("evt"),
            created=self.now(),
            data=data,
            type=type,
            request={"id": request.id, "idempotency_key": request.idempotency_key},
        )
        if account is not None:
            # Events of a connected account carry its id (Stripe adds the field only then).
            event["account"] = account
        self.events[event["id"]] = stored(event, self.sequence())
        return public(event)

    # -- lists -----------------------------------------------------------------------------

    def page(self, items: Iterable[Obj], query: Params, url: str, kind: str) -> Obj:
        """A page of a list, newest first: ``limit``, ``starting_after``, ``ending_before``."""
        ordered = sorted(items, key=lambda o: o["_seq"], reverse=True)
        limit = params.integer(query, "limit", minimum=1) or 10
        if limit > 100:
            raise errors.invalid("limit", "This value must be less than or equal to 100.")
        after = params.string(query, "starting_after")
        before = params.string(query, "ending_before")
        ids = [o["id"] for o in ordered]
        if after is not None:
            if after not in ids:
                raise errors.no_such(kind, after, param="starting_after", status=400)
            window = ordered[ids.index(after) + 1 :]
            chosen, has_more = window[:limit], len(window) > limit
        elif before is not None:
            if before not in ids:
                raise errors.no_such(kind, before, param="ending_before", status=400)
            window = ordered[: ids.index(before)]
            chosen, has_more = window[-limit:], len(window) > limit
        else:
            chosen, has_more = ordered[:limit], len(ordered) > limit
        return stripe_list(url, [public(o) for o in chosen], has_more=has_more)

    def sequence(self) -> int:
        self._seq += 1
        return self._seq


def public(obj: Obj) -> Obj:
    """The object as the API shows it: without the server's private bookkeeping fields."""
    return {k: copy.deepcopy(v) for k, v in obj.items() if not k.startswith("_")}


def created_filter(query: Params) -> Callable[[Obj], bool]:
    """Stripe's ``created`` list filter: an exact timestamp or ``created[gt|gte|lt|lte]``."""
    raw = query.get("created")
    if raw is None:
        return lambda _: True
    if isinstance(raw, str):
        exact = params.integer(query, "created")
        return lambda o: o["created"] == exact
    bounds = {op: params.integer(raw, op) for op in ("gt", "gte", "lt", "lte")}
    params.only(raw, bounds)

    def keep(o: Obj) -> bool:
        c: int = o["created"]
        gt, gte, lt, lte = (bounds[k] for k in ("gt", "gte", "lt", "lte"))
        return (
            (gt is None or c > gt)
            and (gte is None or c >= gte)
            and (lt is None or c < lt)
            and (lte is None or c <= lte)
        )

    return keep


def stored(obj: Obj, seq: int) -> Obj:
    """Attach the private creation sequence that orders lists (``created`` has 1 s resolution)."""
    obj["_seq"] = seq
    return obj
