"""The job queue in the database: enqueue inside the caller's transaction (dropped with a
rollback), claim with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, run each job in its own
transaction, retry with backoff."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from openpartner.core.ids import new_id
from openpartner.core.time import utc_now
from openpartner.worker.models import Job

log = logging.getLogger(__name__)
Handler = Callable[[Session, dict[str, Any]], None]
HANDLERS: dict[str, Handler] = {}


def task(kind: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        HANDLERS[kind] = fn
        return fn

    return register


def enqueue(session: Session, kind: str, payload: dict[str, Any]) -> Job:
    job = Job(id=new_id("job"), kind=kind, payload=payload)
    session.add(job)
    session.flush()
    return job


def _claim(session: Session) -> Job | None:
    stmt = (
        sa.select(Job)
        .where(Job.status == "queued", Job.run_after <= utc_now())
        .order_by(Job.run_after, Job.id)
        .limit(1)
    )
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    return session.scalar(stmt)


def run_once(sessions: sessionmaker[Session]) -> bool:
    """Run one due job; returns False when none was due."""
    _load_tasks()
    with sessions() as session:
        job = _claim(session)
        if job is None:
            session.rollback()
            return False
        handler = HANDLERS.get(job.kind)
        try:
            if handler is None:
                raise LookupError(f"no handler for job kind {job.kind!r}")
            with session.begin_nested():
                handler(session, job.payload)
            job.status = "done"
            job.finished_at = utc_now()
        except Exception as exc:  # a failing job is retried, never lost
            job.attempts += 1
            job.last_error = f"{type(exc).__name__}: {exc}"[:2000]
            if job.attempts >= job.max_attempts:
                job.status = "failed"
                job.finished_at = utc_now()
            else:
                job.run_after = utc_now() + timedelta(seconds=min(2**job.attempts, 3600))
            log.warning("job %s (%s) failed: %s", job.id, job.kind, job.last_error)
        session.commit()
        return True


def run_until_idle(sessions: sessionmaker[Session], limit: int = 10_000) -> int:
    ran = 0
    while ran < limit and run_once(sessions):
        ran += 1
    return ran


def _load_tasks() -> None:
    # Importing registers the handlers; kept here so the queue has no import cycle with them.
    import openpartner.commissions.review
    import openpartner.integrations.stripe.tasks
    import openpartner.payouts.tasks  # noqa: F401
