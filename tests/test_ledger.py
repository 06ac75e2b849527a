"""The double-entry ledger: balanced postings only, and a reconciliation check that notices
when the books and the commissions or payouts disagree."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sqlalchemy.orm import Session

from openpartner.cli import main
from openpartner.commissions.models import Commission
from openpartner.db.engine import get_engine
from openpartner.ledger import accounts
from openpartner.ledger.check import check_books
from openpartner.ledger.models import LedgerEntry
from openpartner.ledger.service import Refs, move, partner_balances, post
from openpartner.payouts.models import Payout
from openpartner.settings import Settings, get_settings
from tests.conftest import create_test_database
from tests.factories import make_partner, make_program
from tests.ledger_helpers import (
    approve_all,
    assert_books_balance,
    only_commission,
    pay_all,
    percent,
    sale,
    scratch_database,
    set_rules,
)

REFS = Refs(program_id="prg_x", partner_id="ptn_x", currency="USD", actor="test")


def test_only_balanced_transactions_on_known_accounts_are_posted(session: Session) -> None:
    with pytest.raises(ValueError, match="unbalanced"):
        post(session, "accrual", REFS, [(accounts.EXPENSE, 100), (accounts.PENDING, -99)])
    with pytest.raises(ValueError, match="unknown ledger account"):
        post(session, "accrual", REFS, [(accounts.EXPENSE, 100), ("petty_cash", -100)])
    with pytest.raises(ValueError, match="unknown ledger kind"):
        move(session, "gift", REFS, 100, accounts.EXPENSE, accounts.PENDING)
    txn = move(session, "accrual", REFS, -250, accounts.EXPENSE, accounts.PENDING)
    session.flush()
    legs = session.scalars(sa.select(LedgerEntry).where(LedgerEntry.txn_id == txn)).all()
    assert sorted((leg.account, leg.amount) for leg in legs) == [
        (accounts.EXPENSE, -250),
        (accounts.PENDING, 250),
    ]


def test_balances_are_sums_over_the_ledger(session: Session, settings: Settings) -> None:
    program = make_program(session, holding_days=0)
    set_rules(session, program, percent(1000))
    partner = make_partner(session, program=program)
    sale(session, settings, partner, 10_000)
    pay_all(session, program)
    sale(session, settings, partner, 30_000)
    sale(session, settings, partner, 20_000, "EUR")
    (eur, usd) = partner_balances(session, partner.id)
    assert (usd.currency, usd.pending, usd.paid, usd.earned) == ("USD", 3000, 1000, 4000)
    assert (eur.currency, eur.pending, eur.earned) == ("EUR", 2000, 2000)
    assert_books_balance(session)


def test_the_check_catches_an_unbalanced_or_stray_entry(
    session: Session, settings: Settings
) -> None:
    program = make_program(session, holding_days=0)
    set_rules(session, program, percent(1000))
    partner = make_partner(session, program=program)
    sale(session, settings, partner, 10_000)
    assert_books_balance(session)
    session.add(
        LedgerEntry(
            txn_id="led_forged", kind="accrual", program_id=program.id, partner_id=partner.id,
            account=accounts.PENDING, currency="USD", amount=-1, actor="someone",
        )
    )  # fmt: skip
    codes = {p.code for p in check_books(session).problems}
    # written behind the ledger service's back: the running balance did not follow either
    assert codes == {"unbalanced_transaction", "balance_mismatch", "running_balance_mismatch"}


def test_the_check_catches_commissions_and_payouts_edited_behind_its_back(
    session: Session, settings: Settings
) -> None:
    program = make_program(session, holding_days=0)
    set_rules(session, program, percent(1000))
    partner = make_partner(session, program=program)
    commission = only_commission(session, sale(session, settings, partner, 10_000))
    commission.amount += 1
    session.flush()
    assert {p.code for p in check_books(session).problems} == {
        "commission_mismatch",
        "balance_mismatch",
    }
    commission.amount -= 1
    sale(session, settings, partner, 5_000)
    (payout,) = pay_all(session, program)
    session.execute(sa.update(Payout).where(Payout.id == payout.id).values(amount=1))
    assert "payout_items" in {p.code for p in check_books(session).problems}


@pytest.fixture
def cli_database(settings: Settings) -> Iterator[str]:
    """A scratch database the ``openpartner`` command reaches through DATABASE_URL."""
    with scratch_database(create_test_database) as (url, sessions):
        with sessions() as setup:
            program = make_program(setup, holding_days=0)
            set_rules(setup, program, percent(1000))
            partner = make_partner(setup, program=program)
            sale(setup, settings, partner, 10_000)
            approve_all(setup, program)
            setup.commit()
        get_settings.cache_clear()
        get_engine.cache_clear()
        yield url
        get_engine().dispose()
        get_settings.cache_clear()
        get_engine.cache_clear()


def test_cli_payouts_run_and_ledger_check(cli_database: str) -> None:
    runner = CliRunner()
    env = {"DATABASE_URL": cli_database}
    ran = runner.invoke(main, ["payouts", "run"], env=env)
    assert ran.exit_code == 0, ran.output
    assert "1 payouts, 0 carried" in ran.output and " 1000 USD" in ran.output
    checked = runner.invoke(main, ["ledger", "check"], env=env)
    assert checked.exit_code == 0, checked.output
    assert "the books balance" in checked.output

    with get_engine().begin() as conn:
        conn.execute(sa.update(Commission).values(status="pending"))
    broken = runner.invoke(main, ["ledger", "check"], env=env)
    assert broken.exit_code == 1
    assert "commission_mismatch" in broken.output
