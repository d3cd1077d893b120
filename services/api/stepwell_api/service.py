"""The API service's run logic. Owns the database transactions; raises :mod:`stepwell.errors`.

Creating a run validates the spec and parameters before anything is written, records
the run as PENDING, commits, and only then hands it to the scheduler. A run the
scheduler has not acknowledged stays PENDING with ``handed_at`` unset, and
:meth:`RunService.hand_over_pending` (driven by :class:`~stepwell_api.handover.HandoverLoop`)
keeps offering it until the scheduler takes it, so a run is never stuck because the
scheduler was down. Termination works the same way: the wish is recorded first and
CancelRun is retried until the scheduler acknowledges it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

from stepwell.errors import FailedPrecondition, InvalidArgument, NotFound, StepwellError
from stepwell.ir import load_pipeline_spec, resolve_parameters
from stepwell.server import Database
from stepwell_api.domain import (
    FINAL_STATES,
    Handover,
    NewRun,
    Run,
    RunPage,
    RunState,
    StatusReport,
)
from stepwell_api.models import ID_LENGTH, NAMESPACE_LENGTH, RunRow
from stepwell_api.repository import RunRepository, as_utc

log = logging.getLogger(__name__)

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 200
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


class RunService:
    """Creates, reads, lists and terminates runs; applies the scheduler's status reports."""

    def __init__(self, db: Database, scheduler: SchedulerGateway, default_namespace: str = "") -> None:
        self.db = db
        self.scheduler = scheduler
        self.default_namespace = default_namespace
        # Calls to the scheduler in flight in this process, so the handover loop does not
        # repeat a call CreateRun or TerminateRun is making (repeats are harmless, only wasteful).
        self._in_flight: set[tuple[str, str]] = set()
        self._in_flight_lock = threading.Lock()

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

    # -- create -------------------------------------------------------------------------

    def create_run(self, new: NewRun) -> Run:
        """Validates ``new``, records it as PENDING and tries to hand it to the scheduler.

        Raises :class:`InvalidArgument` for a bad spec or bad parameters; nothing is
        written then. When the scheduler cannot be reached the run is returned PENDING
        and the handover loop offers it again later.

        An empty display name defaults to ``"<pipeline name> <UTC timestamp>"`` (KFP
        refuses an empty name; Stepwell's CLI does not ask for one).
        """
        doc = load_pipeline_spec(new.pipeline_spec)
        parameters = resolve_parameters(doc.root_parameters, dict(new.parameters))
        namespace = new.namespace or self.default_namespace
        _check_length("run.namespace", namespace, NAMESPACE_LENGTH)
        _check_length("run.experiment_id", new.experiment_id, ID_LENGTH)
        now = utcnow()
        display_name = new.display_name.strip() or f"{doc.name} {now:%Y-%m-%d %H:%M:%S}"
        row = RunRow(
            run_id=str(uuid.uuid4()),
            display_name=display_name,
            description=new.description,
            namespace=namespace,
            experiment_id=new.experiment_id,
            pipeline_name=doc.name,
            pipeline_spec=doc.spec,
            platform_spec=doc.platform_spec,
            parameters=parameters,
            pipeline_root=new.pipeline_root,
            state=RunState.PENDING.value,
            error="",
            outputs={},
            created_at=now,
            scheduled_at=now,
            handover_attempts=0,
        )
        with self.db.session() as session:
            repo = RunRepository(session)
            repo.add(row)
            handover = _handover_of(row)
        log.info("run %s (%s) recorded as PENDING", row.run_id, doc.name)
        self._hand_over(handover)
        return self.get_run(row.run_id)

    # -- read ---------------------------------------------------------------------------

    def get_run(self, run_id: str) -> Run:
        """The run with its task details; :class:`NotFound` naming the id when unknown."""
        if not run_id:
            raise InvalidArgument("run_id is required")
        with self.db.session() as session:
            repo = RunRepository(session)
            row = repo.get_row(run_id)
            if row is None:
                raise NotFound(f"run {run_id!r} not found")
            return repo.load(row)

    def list_runs(self, namespace: str | None = None, page_size: int = 0, page_token: str = "") -> RunPage:
        """One page of runs, newest first, in ``namespace`` (all namespaces when None).

        ``page_size`` 0 means 20; larger than 200 is cut to 200. ``page_token`` is the
        ``next_page_token`` of the previous page; an empty ``next_page_token`` marks the
        last page. One query reads the page, one reads all its runs' tasks.
        """
        if page_size < 0:
            raise InvalidArgument(f"page_size must not be negative; got {page_size}")
        size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        after = _decode_page_token(page_token, namespace) if page_token else None
        with self.db.session() as session:
            repo = RunRepository(session)
            rows = repo.list_rows(namespace, size + 1, after)
            has_more = len(rows) > size
            rows = rows[:size]
            tasks = repo.tasks_of([r.run_id for r in rows])
            runs = [repo.to_domain(r, tasks.get(r.run_id, [])) for r in rows]
            total = repo.count(namespace)
        token = _encode_page_token(runs[-1], namespace) if has_more and runs else ""
        return RunPage(runs=runs, next_page_token=token, total_size=total)

    # -- terminate ----------------------------------------------------------------------

    def terminate_run(self, run_id: str) -> Run:
        """Asks for the run to stop: CANCELING until the scheduler reports CANCELED.

        A run the scheduler never received is CANCELED at once. A run that already
        ended is :class:`FailedPrecondition`.
        """
        if not run_id:
            raise InvalidArgument("run_id is required")
        send_cancel = False
        with self.db.session() as session:
            repo = RunRepository(session)
            row = repo.lock_row(run_id)
            if row is None:
                raise NotFound(f"run {run_id!r} not found")
            state = RunState(row.state)
            if state in FINAL_STATES:
                raise FailedPrecondition(
                    f"run {run_id!r} already ended ({state.value}); there is nothing to terminate"
                )
            now = utcnow()
            row.cancel_requested_at = row.cancel_requested_at or now
            if row.handed_at is None:
                # The scheduler never acknowledged it: nothing runs, so it is over now.
                # Should a handover be in flight, its acknowledgement sends CancelRun.
                row.state = RunState.CANCELED.value
                row.finished_at = now
            else:
                row.state = RunState.CANCELING.value
                row.cancel_acked_at = None
                send_cancel = True
        if send_cancel:
            self._send_cancel(run_id)
        return self.get_run(run_id)

    # -- status reports -----------------------------------------------------------------

    def report_status(self, report: StatusReport) -> None:
        """Applies a scheduler's status report: state, error, outputs and task details.

        Unknown runs are :class:`NotFound`. A run in a final state keeps it (a report of
        another state is stale and ignored), a report older than the last one applied
        is ignored, and a CANCELING run stays CANCELING until a final state arrives.
        """
        if not report.run_id:
            raise InvalidArgument("run_id is required")
        if report.state == RunState.RUNTIME_STATE_UNSPECIFIED:
            raise InvalidArgument(f"report for run {report.run_id!r} has no state")
        with self.db.session() as session:
            repo = RunRepository(session)
            row = repo.lock_row(report.run_id)
            if row is None:
                raise NotFound(f"run {report.run_id!r} not found")
            current = RunState(row.state)
            last = as_utc(row.status_updated_at)
            if report.update_time is not None and last is not None and report.update_time < last:
                log.debug("ignoring a stale report for run %s", report.run_id)
                return
            new = report.state
            if current in FINAL_STATES and new != current:
                log.info(
                    "run %s is %s; ignoring a report of %s", report.run_id, current.value, new.value
                )
                return
            if current == RunState.CANCELING and new not in FINAL_STATES:
                new = RunState.CANCELING
            now = utcnow()
            row.state = new.value
            row.error = report.error
            row.outputs = report.outputs.to_json()
            if new in FINAL_STATES and row.finished_at is None:
                row.finished_at = report.update_time or now
            if row.handed_at is None:
                row.handed_at = now  # a report proves the scheduler has the run
            row.status_updated_at = report.update_time or now
            repo.replace_tasks(report.run_id, report.task_details)

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
        send_cancel = False
        with self.db.session() as session:
            row = RunRepository(session).lock_row(handover.run_id)
            if row is not None:
                if row.handed_at is None:
                    row.handed_at = utcnow()
                # Terminated while the handover was in flight: stop what just started.
                send_cancel = row.cancel_requested_at is not None and row.cancel_acked_at is None
        log.info("run %s handed to the scheduler", handover.run_id)
        if send_cancel:
            self._send_cancel(handover.run_id)
        return "handed"

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


def _check_length(field: str, value: str, limit: int) -> None:
    if len(value) > limit:
        raise InvalidArgument(f"{field} is longer than {limit} characters")


def _encode_page_token(last: Run, namespace: str | None) -> str:
    data = {"c": last.created_at.isoformat(), "i": last.run_id, "n": namespace}
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode()


def _decode_page_token(token: str, namespace: str | None) -> tuple[datetime, str]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        created_at = datetime.fromisoformat(data["c"])
        run_id = str(data["i"])
        token_namespace = data.get("n")
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise InvalidArgument("page_token is not valid; pass the next_page_token of the previous page") from None
    if token_namespace != namespace:
        raise InvalidArgument("page_token belongs to a listing of another namespace")
    return as_utc(created_at) or created_at, run_id
