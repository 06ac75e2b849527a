"""The job queue in the database: enqueue inside the caller's transaction (dropped with a
rollback), claim with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, run each job in its own
transaction, retry with backoff.

A job that calls another service (a Stripe transfer) must not hold a transaction while it waits:
on SQLite that transaction is the database's one write lock, and every API write would queue
behind a slow network call. Such a job (``@task(kind, calls_out=True)``) is claimed with a
*lease*: the claim commits at once, counting the attempt and making the job due again only when
the lease runs out (so a worker killed mid-call loses nothing; the job runs again). Its handler
gets the session factory and opens its own short transactions; it must be safe to run again.
"""

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
CallingHandler = Callable[[sessionmaker[Session], dict[str, Any]], None]
HANDLERS: dict[str, Handler] = {}
CALLING_HANDLERS: dict[str, CallingHandler] = {}
LEASE = timedelta(minutes=5)
"""How long a claimed calling job is left to its worker before another may run it: longer than
any call it makes (Stripe's timeout and retries)."""


def task(kind: str) -> Callable[[Handler], Handler]:
    """Register a handler that runs inside the job's own transaction."""

    def register(fn: Handler) -> Handler:
        HANDLERS[kind] = fn
        return fn

    return register


def calling_task(kind: str) -> Callable[[CallingHandler], CallingHandler]:
    """Register a handler that calls another service: run under a lease, outside any
    transaction, with the session factory (see the module docstring)."""

    def register(fn: CallingHandler) -> CallingHandler:
        CALLING_HANDLERS[kind] = fn
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
        if job.kind in CALLING_HANDLERS:
            job.attempts += 1  # counted at the claim: a worker killed mid-call still used one
            job.run_after = utc_now() + LEASE
            job_id, handler, payload = job.id, CALLING_HANDLERS[job.kind], job.payload
            session.commit()
        else:
            _run_in_transaction(session, job)
            session.commit()
            return True
    _run_under_lease(sessions, job_id, handler, payload)
    return True


def _run_in_transaction(session: Session, job: Job) -> None:
    handler = HANDLERS.get(job.kind)
    try:
        if handler is None:
            raise LookupError(f"no handler for job kind {job.kind!r}")
        with session.begin_nested():
            handler(session, job.payload)
        _done(job)
    except Exception as exc:  # a failing job is retried, never lost
        job.attempts += 1
        _retry_later(job, exc)


def _run_under_lease(
    sessions: sessionmaker[Session], job_id: str, handler: CallingHandler, payload: dict[str, Any]
) -> None:
    failure: Exception | None = None
    try:
        handler(sessions, payload)
    except Exception as exc:  # a failing job is retried, never lost
        failure = exc
    with sessions() as session:
        job = session.scalar(sa.select(Job).where(Job.id == job_id).with_for_update())
        if job is not None and job.status == "queued":
            if failure is None:
                _done(job)
            else:
                _retry_later(job, failure)
        session.commit()


def _done(job: Job) -> None:
    job.status = "done"
    job.finished_at = utc_now()


def _retry_later(job: Job, exc: Exception) -> None:
    job.last_error = f"{type(exc).__name__}: {exc}"[:2000]
    if job.attempts >= job.max_attempts:
        job.status = "failed"
        job.finished_at = utc_now()
    else:
        job.run_after = utc_now() + timedelta(seconds=min(2**job.attempts, 3600))
    log.warning("job %s (%s) failed: %s", job.id, job.kind, job.last_error)


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
