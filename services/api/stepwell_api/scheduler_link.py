"""The API service's side of the scheduler contract: handing runs over and cancelling
them, with retries, so a run is never stuck because the scheduler was down.

A run the scheduler has not acknowledged stays PENDING with ``handed_at`` unset, and
:meth:`SchedulerLink.hand_over_pending` (driven by :class:`~stepwell_api.handover.HandoverLoop`)
keeps offering it until the scheduler takes it. Termination works the same way: the
wish is recorded first and CancelRun is retried until the scheduler acknowledges it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

from sqlalchemy import Table, bindparam, func, update

from stepwell.errors import FailedPrecondition, InvalidArgument, NotFound, StepwellError
from stepwell.server import Database
from stepwell_api.domain import FINAL_STATES, Handover, RunState
from stepwell_api.models import RunRow
from stepwell_api.repository import RunRepository

log = logging.getLogger(__name__)

#: Errors from the scheduler that mean "this run can never start": the run is failed
#: instead of being offered again.
REFUSALS: tuple[type[StepwellError], ...] = (InvalidArgument, FailedPrecondition)


class SchedulerGateway(Protocol):
    """What the run service needs from the scheduler.

    Implementations raise :class:`~stepwell.errors.Unavailable` (or another
    :class:`StepwellError`) when the call may succeed later, and
    :class:`InvalidArgument` / :class:`FailedPrecondition` when the scheduler refuses
    the run for good.
    """

    def start_run(self, handover: Handover) -> None:
        """Hands a validated run to the scheduler; idempotent per run id."""

    def cancel_run(self, run_id: str) -> None:
        """Asks the scheduler to stop a run."""

    # Optional: ``retry_run(run_id)`` re-runs a run's failed tasks; without it
    # RetryRun is FAILED_PRECONDITION for runs the scheduler already has.


@dataclass
class HandoverPass:
    """What one pass of :meth:`RunService.hand_over_pending` did."""

    handed: int = 0
    refused: int = 0
    #: True when the scheduler could not be reached; the pass stopped early.
    unreachable: bool = False

def utcnow() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(timezone.utc)


class SchedulerLink:
    """Calls to the scheduler for runs, their acknowledgements and their retries."""

    def __init__(self, db: Database, scheduler: SchedulerGateway) -> None:
        self.db = db
        self.scheduler = scheduler
        # Calls to the scheduler in flight in this process, so the handover loop does not
        # repeat a call CreateRun or TerminateRun is making (repeats are harmless, only wasteful).
        self._in_flight: set[tuple[str, str]] = set()
        self._in_flight_lock = threading.Lock()
        # Acknowledged handovers not yet written, and the lock of the one thread that
        # writes them: concurrent CreateRuns share one UPDATE (a group commit).
        self._acks: set[str] = set()
        self._acks_lock = threading.Lock()
        self._acks_flush = threading.Lock()

    @contextlib.contextmanager
    def _exclusive(self, call: str, run_id: str) -> Iterator[bool]:
        """Yields False when the same scheduler call for ``run_id`` is already in flight."""
        key = (call, run_id)
        with self._in_flight_lock:
            mine = key not in self._in_flight
            self._in_flight.add(key)
        if not mine:
            yield False
            return
        try:
            yield True
        finally:
            with self._in_flight_lock:
                self._in_flight.discard(key)

    # -- handing runs to the scheduler --------------------------------------------------

    def hand_over_pending(self, limit: int = 100) -> HandoverPass:
        """Offers every PENDING run the scheduler has not acknowledged, and re-sends
        unacknowledged cancellations. Stops at the first unreachable-scheduler error."""
        result = HandoverPass()
        with self.db.session() as session:
            repo = RunRepository(session)
            handovers = [_handover_of(r) for r in repo.awaiting_handover(limit)]
            cancels = repo.awaiting_cancel(limit)
        for handover in handovers:
            outcome = self._hand_over(handover, recheck=True)
            if outcome == "handed":
                result.handed += 1
            elif outcome == "refused":
                result.refused += 1
            elif outcome == "unreachable":
                result.unreachable = True
                return result
        for run_id in cancels:
            if not self._send_cancel(run_id, recheck=True):
                result.unreachable = True
                return result
        return result

    def _hand_over(self, handover: Handover, recheck: bool = False) -> str:
        """Calls StartRun once. Returns "handed", "refused", "unreachable" or "skipped"
        (another thread is handing this run over right now or, with ``recheck``, the
        run no longer waits for a handover)."""
        with self._exclusive("start", handover.run_id) as mine:
            if not mine or (recheck and not self._still_awaits_handover(handover.run_id)):
                return "skipped"
            return self._start_run(handover)

    def _still_awaits_handover(self, run_id: str) -> bool:
        with self.db.session() as session:
            row = RunRepository(session).get_row(run_id)
            return row is not None and row.state == RunState.PENDING.value and row.handed_at is None

    def _start_run(self, handover: Handover) -> str:
        try:
            self.scheduler.start_run(handover)
        except REFUSALS as err:
            log.warning("the scheduler refused run %s: %s", handover.run_id, err)
            with self.db.session() as session:
                row = RunRepository(session).lock_row(handover.run_id)
                if row is not None and row.state == RunState.PENDING.value:
                    row.state = RunState.FAILED.value
                    row.error = f"the scheduler refused the run: {err}"
                    row.finished_at = utcnow()
            return "refused"
        except Exception as err:
            with self.db.session() as session:
                row = RunRepository(session).lock_row(handover.run_id)
                attempts = 0
                if row is not None:
                    attempts = row.handover_attempts = (row.handover_attempts or 0) + 1
            if not isinstance(err, StepwellError):
                log.exception("handing run %s to the scheduler failed (will retry)", handover.run_id)
            else:
                # The first failure and every tenth after it: a down scheduler is not log spam.
                level = logging.WARNING if attempts % 10 == 1 else logging.DEBUG
                log.log(level, "could not hand run %s to the scheduler (attempt %d, will retry): %s",
                        handover.run_id, attempts, err)
            return "unreachable"
        self._record_ack(handover.run_id)
        log.info("run %s handed to the scheduler", handover.run_id)
        return "handed"

    def _record_ack(self, run_id: str) -> None:
        """Writes ``handed_at`` for ``run_id`` before returning, batched with the
        acknowledgements other threads are recording (one UPDATE for all of them).
        Runs terminated while their handover was in flight are then asked to stop."""
        with self._acks_lock:
            self._acks.add(run_id)
        with self._acks_flush:
            with self._acks_lock:
                batch, self._acks = self._acks, set()
            if not batch:
                return  # another thread wrote ours
            # One statement, so one autocommit round trip.
            with self.db.autocommit() as connection:
                rows = connection.execute(_RECORD_ACKS, {"ids": sorted(batch), "now": utcnow()}).all()
        for acked_id, requested, cancel_acked in rows:
            if requested is not None and cancel_acked is None:
                self._send_cancel(acked_id)

    def _send_cancel(self, run_id: str, recheck: bool = False) -> bool:
        """Calls CancelRun once; records the acknowledgement. False when unreachable."""
        with self._exclusive("cancel", run_id) as mine:
            if not mine or (recheck and not self._still_awaits_cancel(run_id)):
                return True
            return self._cancel_run(run_id)

    def _still_awaits_cancel(self, run_id: str) -> bool:
        with self.db.session() as session:
            row = RunRepository(session).get_row(run_id)
            return row is not None and row.cancel_acked_at is None

    def _cancel_run(self, run_id: str) -> bool:
        try:
            self.scheduler.cancel_run(run_id)
        except NotFound:
            # The scheduler has no such run, so nothing runs: the run is over.
            with self.db.session() as session:
                row = RunRepository(session).lock_row(run_id)
                if row is not None:
                    row.cancel_acked_at = utcnow()
                    if row.state not in {s.value for s in FINAL_STATES}:
                        row.state = RunState.CANCELED.value
                        row.finished_at = utcnow()
            return True
        except Exception as err:
            if isinstance(err, StepwellError):
                log.warning("could not ask the scheduler to cancel run %s (will retry): %s", run_id, err)
            else:
                log.exception("cancelling run %s failed (will retry)", run_id)
            return False
        with self.db.session() as session:
            row = RunRepository(session).lock_row(run_id)
            if row is not None and row.cancel_acked_at is None:
                row.cancel_acked_at = utcnow()
        return True


_runs = typing.cast(Table, RunRow.__table__)
#: Records acknowledged handovers (built once: compiled once).
_RECORD_ACKS = (
    update(_runs)
    .where(_runs.c.run_id.in_(bindparam("ids", expanding=True)))
    .values(handed_at=func.coalesce(_runs.c.handed_at, bindparam("now", type_=_runs.c.handed_at.type)))
    .returning(_runs.c.run_id, _runs.c.cancel_requested_at, _runs.c.cancel_acked_at)
)


def _handover_of(row: RunRow) -> Handover:
    spec: dict[str, Any] = row.pipeline_spec
    if row.platform_spec:
        spec = {"pipeline_spec": row.pipeline_spec, "platform_spec": row.platform_spec}
    return Handover(
        run_id=row.run_id,
        pipeline_spec=spec,
        parameters=dict(row.parameters or {}),
        pipeline_root=row.pipeline_root,
        namespace=row.namespace,
    )
