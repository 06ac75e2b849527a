"""Group commit for ``POST /v1/events``: concurrent single events share one transaction.

A single event alone costs the derivation lock, a look at its program's rules (kept between
groups: ``program_rules.py``), a touches query, two inserts and a commit (a WAL flush):
milliseconds of CPU for one row. Requests that arrive while a group is being written wait for
the next group and are ingested together through the set-based path the batch endpoint uses
(:func:`openpartner.events.batch.ingest_in_order`), so those costs are paid once per group. A
request that finds nothing in flight starts a group of one at once: an idle API adds no wait, a
busy one batches itself.

What a client sees does not change. Each request is answered only after the group's commit (a
2xx still means committed), with exactly the answer it would have had alone: the items are
ingested in arrival order, as one-by-one ingest would have done. A client error (a rejected
event, an idempotency conflict) is that item's answer and writes nothing of it; the others go on.
Anything else that fails a group (a constraint the checks did not foresee) rolls it back and
each of its items is retried alone in a transaction of its own, so one bad request can only fail
itself. A database that is unreachable fails the whole group at once (each request answers
``503 database_unavailable``), without one more attempt per event.

There is one committer per API process; its queue lives on the event loop. One group is
written at a time (``max_groups``): with two in flight each was half as large and the events
cost more CPU each (docs/benchmarks.md, ingest, fourth pass).
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass, field

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from openpartner.accounts.scopes import Principal
from openpartner.api.concurrency import DatabaseSlots
from openpartner.core.errors import OpenPartnerError
from openpartner.events import service
from openpartner.events.batch import ingest_in_order
from openpartner.events.program_rules import ProgramRules
from openpartner.events.schemas import EventIn
from openpartner.programs.service import program_not_found, target_program_id
from openpartner.settings import Settings

Outcome = service.Ingested | BaseException


@dataclass(slots=True)
class _Waiting:
    principal: Principal
    body: EventIn
    key: str
    answer: asyncio.Future[service.Ingested]


@dataclass(slots=True)
class _LoopState:
    queue: list[_Waiting] = field(default_factory=list)
    running: int = 0
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


class GroupCommitter:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: Settings,
        *,
        max_groups: int = 1,
        max_group_size: int = 500,
        slots: DatabaseSlots | None = None,
    ) -> None:
        self.sessions = sessions
        self.slots = slots
        self.settings = settings
        self.max_groups = max_groups
        self.max_group_size = max_group_size
        self.programs = ProgramRules()
        # Per event loop: an app served by several loops (tests open nested clients) never
        # mixes their futures.
        self._states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
            weakref.WeakKeyDictionary()
        )

    async def ingest(self, principal: Principal, body: EventIn, key: str) -> service.Ingested:
        """Ingest one event; returns once its group is committed, raises what it alone would."""
        loop = asyncio.get_running_loop()
        state = self._states.get(loop)
        if state is None:
            state = self._states[loop] = _LoopState()
        answer: asyncio.Future[service.Ingested] = loop.create_future()
        state.queue.append(_Waiting(principal, body, key, answer))
        self._start_groups(loop, state)
        # Shielded: a client that disconnects does not cancel the answer others' group needs.
        return await asyncio.shield(answer)

    def _start_groups(self, loop: asyncio.AbstractEventLoop, state: _LoopState) -> None:
        while state.queue and state.running < self.max_groups:
            group = state.queue[: self.max_group_size]
            del state.queue[: self.max_group_size]
            state.running += 1
            task = loop.create_task(self._write(loop, state, group))
            state.tasks.add(task)
            task.add_done_callback(state.tasks.discard)

    async def _write(
        self, loop: asyncio.AbstractEventLoop, state: _LoopState, group: list[_Waiting]
    ) -> None:
        try:
            outcomes: list[Outcome] = await self._run(group)
        except BaseException as exc:  # the thread never ran (cancelled): fail the group
            outcomes = [exc] * len(group)
        finally:
            state.running -= 1
        for waiting, outcome in zip(group, outcomes, strict=True):
            if waiting.answer.done():
                continue
            if isinstance(outcome, BaseException):
                waiting.answer.set_exception(outcome)
            else:
                waiting.answer.set_result(outcome)
        self._start_groups(loop, state)

    async def _run(self, group: list[_Waiting]) -> list[Outcome]:
        if self.slots is None:
            return await run_in_threadpool(self._commit, group)
        # Database work like a request's: it waits for a slot on the event loop.
        async with self.slots.hold():
            return await self.slots.run_sync(lambda: self._commit(group))

    # --- in a worker thread -------------------------------------------------------------

    def _commit(self, group: list[_Waiting]) -> list[Outcome]:
        with self.sessions() as session:
            try:
                outcomes = self._ingest(session, group)
                session.commit()
                return outcomes
            except OperationalError as exc:
                # The database is unreachable or gave up on the transaction: retrying each
                # event alone would only make every request wait for as many failures.
                session.rollback()
                return [exc] * len(group)
            except Exception as exc:
                session.rollback()
                if len(group) == 1:
                    return [exc]
        # Something failed the whole group: each item alone, so it fails only itself.
        return [self._commit_alone(waiting) for waiting in group]

    def _commit_alone(self, waiting: _Waiting) -> Outcome:
        with self.sessions() as session:
            try:
                outcome = self._ingest(session, [waiting])[0]
                session.commit()
            except Exception as exc:
                session.rollback()
                return exc
            return outcome

    def _ingest(self, session: Session, group: list[_Waiting]) -> list[Outcome]:
        outcomes: list[Outcome | None] = [None] * len(group)
        targets: dict[int, str] = {}
        for i, waiting in enumerate(group):
            try:
                targets[i] = target_program_id(waiting.principal, waiting.body.program_id)
                waiting.principal.check_program(targets[i])
            except OpenPartnerError as exc:
                outcomes[i] = exc
        # The programs and their rules: one small statement each when they have not changed.
        known = self.programs.load(session, targets.values())
        pending: list[service.Pending] = []
        positions: list[int] = []
        for i, program_id in targets.items():
            program = known.programs.get(program_id)
            if program is None:
                outcomes[i] = program_not_found(program_id)
                continue
            pending.append(service.Pending(program, group[i].body, group[i].key))
            positions.append(i)
        done = ingest_in_order(session, pending, self.settings, known)
        for i, outcome in zip(positions, done, strict=True):
            outcomes[i] = outcome
        return [o for o in outcomes if o is not None]
