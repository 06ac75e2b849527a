"""What a replay must not lose: events ingested and identities bound while it runs.

A set-based replay reads the program's events, touches and identity edges early and writes the
new rows at the end. Without care, an identify committed in between (which re-derived the
customer's events with the new click) would be overwritten by the replay's older view, and an
event ingested in between would keep the rows of the rules the replay replaces.

So, per program, on PostgreSQL (SQLite serializes writers, so a replay that writes excludes
every other writer from its first write to its commit anyway):

- whoever derives or binds (ingest, identify, a late re-derivation) holds the program's
  *derivation lock* shared for the rest of its transaction, taken before it reads the touches or
  deletes any row;
- a replay waits for the holders at its start (a barrier) and notes the last event and edge
  then; a set-based replay takes the lock exclusively before its first write; after writing,
  every replay re-derives, with the new rules, the events ingested since and the events of every
  customer bound since.

Derivations wait only during a set-based replay's write phase (seconds at a million sales),
never while it reads and derives. The per-event path writes chunk by chunk without the lock:
each chunk locks its events' rows (``attribution.service.lock_events``), so an identify of a
customer whose sale a chunk rewrote waits for the replay's commit, and one committed between a
chunk's reads and its write is caught up after the last chunk. Only an event ingested between
that catch-up and the commit can keep the rules the replay replaces.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from openpartner.db.bulk import is_postgresql
from openpartner.events.models import Event
from openpartner.identity.models import IdentityEdge

_NAMESPACE = b"openpartner:derivation:"


def _key(program_id: str) -> int:
    """A stable signed 64-bit advisory-lock key for the program."""
    digest = hashlib.blake2b(_NAMESPACE + program_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def hold_shared(session: Session, program_ids: Iterable[str]) -> None:
    """Hold the programs' derivation locks shared until the transaction ends (in key order, so
    two holders never wait for each other in opposite orders). A lock this transaction already
    holds costs no second round trip."""
    if not is_postgresql(session):
        return
    wanted = {_key(p) for p in program_ids}
    if not wanted:
        return
    connection = session.connection()  # begins the transaction if none has begun
    held = _held(session)
    for key in sorted(wanted - held):
        connection.execute(_LOCK_SHARED, {"k": key})
        held.add(key)


_LOCK_SHARED = sa.text("SELECT pg_advisory_xact_lock_shared(:k)")


def _held(session: Session) -> set[int]:
    """The derivation locks the session's current transaction holds: they end with it."""
    transaction = session.get_transaction()
    memo = session.info.get("derivation_locks")
    if memo is None or memo[0] is not transaction:
        memo = session.info["derivation_locks"] = (transaction, set())
    held: set[int] = memo[1]
    return held


@dataclass(frozen=True)
class ReplayGuard:
    """A replay's view of what existed when it started; see the module docstring."""

    program_id: str
    last_event: int
    last_edge: int

    @classmethod
    def start(cls, session: Session, program_id: str) -> ReplayGuard:
        if is_postgresql(session):
            # Wait for the derivations in flight: every event and edge numbered up to the marks
            # below is then committed, and so visible to the replay's reads.
            key = {"k": _key(program_id)}
            session.execute(sa.text("SELECT pg_advisory_lock(:k)"), key)
            session.execute(sa.text("SELECT pg_advisory_unlock(:k)"), key)
        last_event = session.scalar(
            sa.select(sa.func.max(Event.seq)).where(Event.program_id == program_id)
        )
        last_edge = session.scalar(
            sa.select(sa.func.max(IdentityEdge.seq)).where(IdentityEdge.program_id == program_id)
        )
        return cls(program_id, last_event or 0, last_edge or 0)

    def hold(self, session: Session) -> None:
        """Before the replay's first write: no derivation of the program until it commits."""
        if is_postgresql(session):
            session.execute(
                sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _key(self.program_id)}
            )

    def late_events(self, session: Session) -> list[Event]:
        """The events the replay did not see or saw with an older identity: ingested after its
        start, or of a customer bound after its start."""
        bound_since = sa.select(IdentityEdge.customer_id).where(
            IdentityEdge.program_id == self.program_id,
            IdentityEdge.seq > self.last_edge,
            IdentityEdge.customer_id.is_not(None),
        )
        return list(
            session.scalars(
                sa.select(Event)
                .where(
                    Event.program_id == self.program_id,
                    Event.type != "refund",  # refunds carry no rows of their own
                    sa.or_(Event.seq > self.last_event, Event.customer_id.in_(bound_since)),
                )
                .order_by(Event.seq)
            )
        )
