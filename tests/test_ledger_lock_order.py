"""Running balances are locked in one order: two transactions that post for the same partners
in opposite orders both commit (PostgreSQL; SQLite runs one writer at a time)."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy.orm import Session

from openpartner.ledger import accounts
from openpartner.ledger.service import Refs, move, partner_balances
from tests.conftest import backend, create_test_database
from tests.factories import make_partner, make_program
from tests.ledger_helpers import scratch_database

pytestmark = pytest.mark.skipif(
    backend() != "postgresql", reason="SQLite serializes writers: no two hold rows at once"
)


def test_postings_for_two_partners_in_opposite_orders_do_not_deadlock() -> None:
    with scratch_database(create_test_database) as (_, sessions):
        with sessions() as setup:
            program = make_program(setup)
            a, b = make_partner(setup, program=program), make_partner(setup, program=program)
            setup.commit()
            ids = (program.id, a.id, b.id)
        both_posted = threading.Barrier(2, timeout=10)
        errors: list[BaseException] = []

        def accrue(session: Session, partner_id: str) -> None:
            refs = Refs(program_id=ids[0], partner_id=partner_id, currency="USD", actor="t")
            move(session, "accrual", refs, 100, accounts.EXPENSE, accounts.PENDING)

        def worker(first: str, second: str) -> None:
            try:
                with sessions() as session:
                    accrue(session, first)
                    session.flush()
                    both_posted.wait()  # each holds its first partner's posting...
                    accrue(session, second)  # ...then posts for the other's
                    session.commit()
            except BaseException as exc:
                errors.append(exc)

        threads = [
            threading.Thread(target=worker, args=(ids[1], ids[2])),
            threading.Thread(target=worker, args=(ids[2], ids[1])),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert errors == []
        with sessions() as session:
            for partner_id in ids[1:]:
                (balance,) = partner_balances(session, partner_id)
                assert balance.pending == 200
