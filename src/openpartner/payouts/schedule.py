"""Scheduled work: payout runs per program (weekly, biweekly, monthly) and auto-approval.

The worker calls :func:`tick` every ``SCHEDULER_INTERVAL_SECONDS``; it only *enqueues* jobs
(``payouts.run``, ``commissions.auto_approve``, and ``payouts.transfer`` again for a
Stripe payout whose job gave up), in the same transaction that advances the
program's ``next_payout_at``, so a run is enqueued once per period even with several workers.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from openpartner.core.time import utc_now
from openpartner.payouts.models import Payout
from openpartner.payouts.service import TRANSFER_JOB
from openpartner.programs.models import Program
from openpartner.worker.models import Job
from openpartner.worker.queue import enqueue

SCHEDULES = ("manual", "weekly", "biweekly", "monthly")
_EPOCH_MONDAY = datetime(1970, 1, 5, tzinfo=UTC)


def next_run_at(schedule: str, now: datetime) -> datetime | None:
    """The first run time strictly after ``now``: Mondays 00:00 UTC (every other one for
    ``biweekly``, counted from 1970-01-05), or the 1st of the month 00:00 UTC."""
    if schedule == "manual":
        return None
    if schedule == "monthly":
        year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
        return datetime(year, month, 1, tzinfo=UTC)
    weeks = (now - _EPOCH_MONDAY) // timedelta(weeks=1) + 1
    if schedule == "biweekly" and weeks % 2:
        weeks += 1
    elif schedule not in ("weekly", "biweekly"):
        raise ValueError(f"unknown payout schedule {schedule!r}")
    return _EPOCH_MONDAY + timedelta(weeks=weeks)


def _queued(session: Session, kind: str) -> bool:
    return (
        session.scalar(sa.select(Job.id).where(Job.kind == kind, Job.status == "queued").limit(1))
        is not None
    )


def requeue_transfers(session: Session) -> list[str]:
    """A Stripe payout stays ``processing`` until its transfer is settled; if its job gave up
    (Stripe unreachable for longer than the job's retries), enqueue it again."""
    processing = set(
        session.scalars(
            sa.select(Payout.id).where(Payout.provider == "stripe", Payout.status == "processing")
        )
    )
    if not processing:
        return []
    queued = {
        job.payload.get("payout_id")
        for job in session.scalars(
            sa.select(Job).where(Job.kind == TRANSFER_JOB, Job.status == "queued")
        )
    }
    missing = sorted(processing - queued)
    for payout_id in missing:
        enqueue(session, TRANSFER_JOB, {"payout_id": payout_id})
    return missing


def tick(session: Session, now: datetime | None = None) -> list[str]:
    """Enqueue what is due; returns the ids of the programs whose payout run was enqueued."""
    now = now or utc_now()
    enqueued = []
    # Lock the scheduled programs (PostgreSQL) so two workers never enqueue the same run.
    programs = session.scalars(
        sa.select(Program)
        .where(Program.payout_schedule != "manual", Program.archived.is_(False))
        .order_by(Program.id)
        .with_for_update()
    ).all()
    for program in programs:
        due = program.next_payout_at
        if due is not None and due <= now:
            enqueue(session, "payouts.run", {"program_id": program.id})
            enqueued.append(program.id)
        if due is None or due <= now:
            program.next_payout_at = next_run_at(program.payout_schedule, now)
    requeue_transfers(session)
    auto = session.scalar(sa.select(Program.id).where(Program.auto_approve.is_(True)).limit(1))
    if auto is not None and not _queued(session, "commissions.auto_approve"):
        enqueue(session, "commissions.auto_approve", {})
    session.flush()
    return enqueued
