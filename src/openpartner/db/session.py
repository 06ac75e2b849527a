"""Sessions. The edge (request, job, CLI command) owns the transaction: it opens a session,
services do their work without committing, and the edge commits once or rolls back."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session, sessionmaker

import openpartner.db.models  # noqa: F401  (every table mapped, so foreign keys resolve)
from openpartner.db.engine import get_engine


def session_factory() -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(), expire_on_commit=False)


@contextmanager
def transaction() -> Iterator[Session]:
    """A unit of work for jobs and CLI commands: commit on success, roll back on any error."""
    session = session_factory()()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
