"""Payout jobs: a program's (scheduled) run, and one Stripe transfer per payout."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from openpartner.integrations.stripe.connect import execute_transfer
from openpartner.payouts.service import TRANSFER_JOB, run_payouts
from openpartner.programs.models import Program
from openpartner.settings import get_settings
from openpartner.worker.queue import calling_task, task


@calling_task(TRANSFER_JOB)
def transfer(sessions: sessionmaker[Session], payload: dict[str, Any]) -> None:
    execute_transfer(sessions, get_settings(), payload["payout_id"])


@task("payouts.run")
def scheduled_run(session: Session, payload: dict[str, Any]) -> None:
    program = session.get(Program, payload["program_id"])
    if program is not None and not program.archived:
        run_payouts(session, program, "job:payouts.run")
