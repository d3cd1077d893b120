"""The engine: one thread that drives every active run.

Each step it harvests finished task attempts, applies cancellations and timeouts,
advances the DAGs of runs that changed, and dispatches queued tasks up to
``max_parallel_tasks`` (advancing: :mod:`.advance`; dispatch: :mod:`.launch` and :mod:`.processes`; harvest
and retries: :mod:`.harvest`).
All state is written to the database; the in-memory maps (plans, handles, and each
run's *view* of its task rows) are caches that are rebuilt when a run is taken over
(:mod:`.recovery`). A view is loaded whole once, then each step reloads only the rows
this engine changed since (harvests, claims, retries; ``_touch``); a cancellation, a
retry, a takeover or any failed step drops it, and the next step loads it whole again. Several schedulers may
share one database: each drives the runs it holds a lease on (:mod:`.leases`). Calls to
the metadata service are made outside database transactions, and a metadata failure
never fails a task.
"""

from __future__ import annotations

import collections
import itertools
import logging
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, inspect, select

from stepwell.server import Database
from stepwell.storage import StoreRouter, s3_config_from_env
from stepwell_scheduler.engine.advance import _GONE, _NEEDS_CONTEXTS, AdvanceMixin
from stepwell_scheduler.engine.dag import now
from stepwell_scheduler.engine.direct import DirectRows
from stepwell_scheduler.engine.failpoints import Failpoints
from stepwell_scheduler.engine.fences import FENCING, FenceFailed
from stepwell_scheduler.engine.harvest import HarvestMixin, _Ended, _Known, _RowEnd
from stepwell_scheduler.engine.launch import LaunchMixin, _Claim
from stepwell_scheduler.engine.leases import Leases, new_worker_id
from stepwell_scheduler.engine.loops import LoopProgress
from stepwell_scheduler.engine.outbox import OutboxMixin
from stepwell_scheduler.engine.plan import PipelinePlan
from stepwell_scheduler.engine.processes import _SEP, _Prepared
from stepwell_scheduler.engine.processes import task_key as _key
from stepwell_scheduler.engine.provision import attempt_root
from stepwell_scheduler.engine.recorder import Recorder, RecordsMixin, _Batch
from stepwell_scheduler.engine.recovery import RecoveryMixin
from stepwell_scheduler.executors import Executor, TaskHandle
from stepwell_scheduler.metadata_client import MetadataClient
from stepwell_scheduler.models import (
    CANCELED,
    CANCELING,
    FINAL_STATES,
    PENDING,
    RUNNING,
    RunRow,
    TaskRow,
)
from stepwell_scheduler.settings import SchedulerSettings

log = logging.getLogger(__name__)




class Engine(AdvanceMixin, LaunchMixin, HarvestMixin, OutboxMixin, RecordsMixin, RecoveryMixin):
    """Drives runs: plans, dispatches, harvests and settles them."""

    def __init__(
        self,
        database: Database,
        settings: SchedulerSettings,
        executor: Executor,
        metadata: MetadataClient,
        on_change: Callable[[str], None] = lambda run_id: None,
    ) -> None:
        self.db = database
        #: Writes the hot transaction's task rows without the ORM's unit of work.
        self.direct = DirectRows(database.engine)
        self.direct.prepare = settings.scheduler_prepared_statements
        self.settings = settings
        self.executor = executor
        self.metadata = metadata
        self.on_change = on_change
        #: Told, before ``on_change``, which task rows of a run this engine wrote (None:
        #: unknown which); the status cache reads just those.
        self.on_rows: Callable[[str, set[str] | None], None] = lambda run_id, names: None
        self._written: dict[str, set[str] | None] = {}
        self.work_dir = settings.resolved_work_dir()
        self.stores = StoreRouter(s3_config_from_env(settings.storage_env()))
        self._plans: dict[str, PipelinePlan] = {}
        self._handles: dict[str, TaskHandle] = {}
        #: Per running attempt this engine started: its run and task row as stored at the
        #: start (so that a harvest need not read them back), and the lease epoch of its
        #: claim (after a lapse, they are read back).
        self._started: dict[str, tuple[RunRow, TaskRow, int]] = {}
        self._pending_starts: list[_Prepared] = []
        self._in_flight: collections.deque[_Batch] = collections.deque()
        self._later: list[_Ended] = []
        self._to_clear: list[tuple[str, int]] = []
        #: Makes the metadata calls that follow the starts (see :mod:`.recorder`).
        self.recorder = Recorder(lambda: self._wake.set())
        #: Runs this engine has begun to cancel (their rows are read at harvest).
        self._canceling: set[str] = set()
        self._timed_out: dict[str, str] = {}
        self._timers = True
        self._exited: collections.deque[str] = collections.deque()
        self._cancels: collections.deque[tuple[str, str]] = collections.deque()
        self._dirty: set[str] = set()
        #: Per run: its task rows as this engine last wrote or read them (a cache; the
        #: database is the truth), and the rows changed since outside ``_advance``.
        self._views: dict[str, dict[str, TaskRow]] = {}
        self._task_dirs: dict[str, set[str]] = {}
        self._task_file_runs: set[str] = set()
        self._touched: dict[str, set[str]] = {}
        #: Per run: its running loops' progress (see ``DagAdvancer.loops``), kept with the view.
        self._loops: dict[str, dict[str, LoopProgress]] = {}
        #: Runs whose view must be reloaded whole (changed by another thread: a retry).
        self._stale: set[str] = set()
        #: Runs this scheduler holds a lease on (a cache of ``sched_runs.lease_owner``).
        self._owned: set[str] = set()
        #: Task keys whose harvest may repeat one a killed scheduler began.
        self._replay: set[str] = set()
        self._tick_due = False
        self._queue_generations = itertools.count(1)
        self._queue_generation = 0
        self._queue_seen = -1
        self.failpoint = Failpoints(settings.scheduler_failpoints)
        self.leases = Leases(database, settings.scheduler_worker_id or new_worker_id(), settings.scheduler_lease_seconds)
        self.leases.on_renewed = self.direct.renewed
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        executor.on_exit = self._exited_callback

    # ----- life cycle -------------------------------------------------------------------

    @property
    def owner(self) -> str:
        """This scheduler's lease owner id."""
        return self.leases.owner

    def start(self) -> None:
        """Takes over runs nobody drives, re-attaches to their tasks and starts the engine."""
        self._resume()
        self.leases.start_heartbeat(self._tick)
        self._thread = threading.Thread(target=self._loop, name="scheduler-engine", daemon=True)
        self._thread.start()

    def stop(self, kill_tasks: bool = False) -> None:
        """Stops the engine thread; task processes keep running unless ``kill_tasks``."""
        self._stopping.set()
        self._wake.set()
        self.leases.stop_heartbeat()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.recorder.shutdown()
        if kill_tasks:
            for handle in list(self._handles.values()):
                self.executor.cancel(handle)
        try:
            self.leases.release()
        except Exception as err:
            log.warning("could not release the scheduler's run leases: %s", err)
        self.executor.shutdown()

    def wake(self, run_id: str | None = None) -> None:
        """Asks the engine thread to look at ``run_id`` (or just to run a step) soon."""
        with self._lock:
            if run_id:
                self._dirty.add(run_id)
        self._wake.set()

    def request_cancel(self, run_id: str, reason: str = "") -> None:
        """Queues the cancellation of a run; the engine kills its tasks, runs its exit
        handlers and ends it CANCELED (FAILED with ``reason`` for a timeout)."""
        with self._lock:
            self._cancels.append((run_id, reason))
        self._wake.set()

    def _tick(self) -> None:
        self._tick_due = True
        self._wake.set()

    def _exit_waits(self) -> bool:
        with self._lock:
            return bool(self._exited)

    def _exited_callback(self, key: str) -> None:
        with self._lock:
            self._exited.append(key)
        self._wake.set()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(timeout=0.2 if self._timers else 1.0)
            self._wake.clear()
            if self._stopping.is_set():
                break
            try:
                if self._tick_due:
                    self._tick_due = False
                    self._lease_tick()
                self._check_timers()
                self.step()
                self._take_ids()
            except Exception:
                log.exception("scheduler engine step failed; retrying")
                self._stopping.wait(0.5)
                self._wake.set()
        try:
            self._drain_records()
        except Exception:
            log.exception("could not store what the last metadata records gave")

    def _take_ids(self) -> None:
        """Ids for the next steps' new rows, taken ahead after a step (Postgres: see
        ``DirectRows.refill_ids``); without them a step only costs a round trip more."""
        try:
            self.direct.refill_ids(self.db)
        except Exception as err:
            log.debug("could not take ids for new task rows ahead: %s", err)

    # ----- one step ---------------------------------------------------------------------

    def step(self) -> None:
        """Harvests, cancels, advances and dispatches until nothing more changes."""
        try:
            for _ in range(100):
                if not self._step_once():
                    return
        finally:
            self._take_records()  # what the recorder's calls gave, and the flags
            self._send_records()

    def _step_once(self) -> bool:
        """One round of :meth:`step`; True when there is more to do."""
        with self._lock:
            exited = list(self._exited)
            self._exited.clear()
        # An attempt whose execution is not recorded yet (it ended that soon) waits for it.
        self._take_records(set(exited))
        handles = {key: self._handles[key] for key in exited if key in self._handles}
        try:
            touched, ended, ended_later, known = self._collect(exited)
        except Exception:
            # Read them again at the next step (as replays), with their exit statuses.
            self._handles.update(handles)
            with self._lock:
                self._replay.update(exited)
                self._exited.extend(exited)
            raise
        with self._lock:
            cancels = list(self._cancels)
            self._cancels.clear()
            dirty = set(self._dirty)
            self._dirty.clear()
        dirty |= touched
        for run_id, reason in cancels:
            if self._apply_cancel(run_id, reason):
                dirty.add(run_id)
        # Whatever becomes of the rows (a row not ended is harvested again, as a replay,
        # recorded at once): the metadata service's end is idempotent.
        self._later += ended_later
        claimed, failed = self._settle(ended, dirty, known)
        changed = dirty | self._start(claimed)
        # The starts' executions to the recorder (the results' at the end of the step);
        # the engine stores what they give once no exit waits, off the path from an exit
        # to a start.
        self._send_records(results=False)
        if not self._exit_waits():
            self._take_records()
        for run_id in changed:
            if run_id in self._written:
                self.on_rows(run_id, self._written.pop(run_id))
            self.on_change(run_id)
        if failed:
            # The loop logs it and tries these runs again after a pause.
            with self._lock:
                self._dirty.update(run_id for run_id, _ in failed)
            raise failed[0][1]
        with self._lock:
            return bool(self._exited or self._cancels or self._dirty)

    def _settle(
        self, ended: list[_RowEnd], dirty: set[str], known: _Known | None = None
    ) -> tuple[list[_Claim], list[tuple[str, Exception]]]:
        """Ends the harvested rows, advances the DAGs of the ``dirty`` runs and claims
        queued tasks, all in one transaction: a chain's next task is claimed in the
        same commit that ends the task before it. A run that is still PENDING (its
        metadata contexts are recorded first, outside any transaction) is advanced
        after. If the transaction fails, the same work is done again one transaction
        per part, so that one run's failure holds back neither the results nor the
        other runs; the runs that could not be advanced are returned with their error."""
        fused = sorted(dirty)
        finals: dict[str, str | None] = {}
        try:
            try:
                claimed = self._settle_once(ended, fused, known, finals, fencing=True)
            except FenceFailed as err:
                # A run changed since this engine read it (the lease heartbeat, mostly):
                # nothing was written; again, with the runs read and locked first.
                log.debug("%s; settling again with the runs locked first", err)
                self._queue_changed()
                for run_id in {*fused, *(item[0] for item in ended)}:
                    self._forget_reads(run_id)
                finals.clear()
                claimed = self._settle_once(ended, fused, known, finals, fencing=False)
        except Exception:
            log.warning("one transaction for the step failed; ending, advancing and claiming one by one", exc_info=True)
            self._queue_changed()
            for run_id in {*fused, *(item[0] for item in ended)}:
                self._forget_view(run_id)
            try:
                self._finish_rows(ended)
            except Exception:
                # Harvest them again at the next step (as replays: the metadata service
                # has their results already), rather than leave their rows RUNNING.
                keys = [_key(run_id, qualified) for run_id, qualified, _state, _values in ended]
                with self._lock:
                    self._replay.update(keys)
                    self._exited.extend(keys)
                raise
            if ended:
                self.failpoint("task-finished", len(ended))
            failed: list[tuple[str, Exception]] = []
            for run_id in fused:
                try:
                    self._advance(run_id)
                except Exception as err:
                    failed.append((run_id, err))
            with self.db.session() as s:
                claimed = self._claim(s)
            self._claim_committed(s)
            return claimed, failed
        if ended:
            self.failpoint("task-finished", len(ended))
        # From here on the claims are committed: whatever fails, they are returned so
        # that they start (or, failing that, the orphan sweep queues them again).
        failed = []
        starting = [run_id for run_id, final in finals.items() if final == _NEEDS_CONTEXTS]
        for run_id, final in finals.items():
            if final not in (_GONE, _NEEDS_CONTEXTS):
                self._advanced(run_id, final)
        for run_id in starting:
            try:
                self._advance(run_id)
            except Exception as err:
                failed.append((run_id, err))
        if len(failed) < len(starting):
            # Runs that started only now have queued their first tasks.
            try:
                with self.db.session() as s:
                    claimed += self._claim(s, already=len(claimed))
                self._claim_committed(s)
            except Exception as err:
                failed.append((starting[0], err))
        return claimed, failed

    def _settle_once(
        self,
        ended: list[_RowEnd],
        fused: list[str],
        known: _Known | None,
        finals: dict[str, str | None],
        fencing: bool,
    ) -> list[_Claim]:
        """The one transaction of :meth:`_settle`; ``fencing``: runs read before may be
        taken unread (see :mod:`.fences`)."""
        with self.db.session() as s:
            s.info[FENCING] = fencing
            self._end_rows(s, ended, known)
            for run_id in fused:
                finals[run_id] = self._advance_in(s, run_id)
            claimed = self._claim(s)
            self.direct.flush(s, commit=True)
        self._claim_committed(s)
        return claimed

    def _plan(self, run: RunRow) -> PipelinePlan:
        plan = self._plans.get(run.run_id)
        if plan is None:
            state = inspect(run)
            spec: dict[str, Any] | None
            if "spec" in state.dict or state.session is not None:
                spec = run.spec
            else:  # a detached run whose (deferred) spec was never loaded
                with self.db.session() as s:
                    spec = s.scalar(select(RunRow.spec).where(RunRow.run_id == run.run_id))
            plan = self._plans[run.run_id] = PipelinePlan(spec or {})
        return plan

    def _touch(self, run_id: str, qualified: str) -> None:
        """Notes that this engine changed a task row of ``run_id`` outside ``_advance``:
        the next advance reloads it into the run's view."""
        self._touched.setdefault(run_id, set()).add(qualified)
        self._wrote(run_id, qualified)

    def _wrote(self, run_id: str, qualified: str | None) -> None:
        """Notes a task row written for the status cache (None: rows unknown)."""
        if qualified is None:
            self._written[run_id] = None
        elif run_id not in self._written:
            self._written[run_id] = {qualified}
        else:
            names = self._written[run_id]
            if names is not None:
                names.add(qualified)

    # ----- cancel and resume ------------------------------------------------------------

    def _apply_cancel(self, run_id: str, reason: str = "") -> bool:
        with self.db.session() as s:
            run = self._owned_run(s, run_id)
            if run is None or run.state in FINAL_STATES:
                return False
            run.state = CANCELING
            self._canceling.add(run_id)
            if reason:
                run.options = {**(run.options or {}), "timed_out": reason}
            for row in s.scalars(select(TaskRow).where(TaskRow.run_id == run_id, TaskRow.state == PENDING)):
                row.state, row.error, row.finished_at = CANCELED, "canceled", now()
        self._forget_view(run_id)
        prefix = run_id + _SEP
        for key, handle in list(self._handles.items()):
            if key.startswith(prefix):
                self.executor.cancel(handle)
        return True

    def _check_timers(self) -> None:
        """Kills attempts past their deadline and cancels runs past theirs."""
        if not self._timers:
            return
        stamp = now()
        mine = RunRow.lease_owner == self.leases.owner
        with self.db.session() as s:
            late_tasks = list(
                s.scalars(
                    select(TaskRow)
                    .join(RunRow, RunRow.run_id == TaskRow.run_id)
                    .where(mine, TaskRow.state == RUNNING, TaskRow.deadline_at <= stamp)
                )
            )
            late_runs = list(
                s.scalars(select(RunRow).where(mine, RunRow.state == RUNNING, RunRow.deadline_at <= stamp))
            )
            pending_timers = s.scalar(
                select(func.count())
                .select_from(TaskRow)
                .join(RunRow, RunRow.run_id == TaskRow.run_id)
                .where(
                    mine,
                    ((TaskRow.state == PENDING) & TaskRow.not_before.is_not(None))
                    | ((TaskRow.state == RUNNING) & TaskRow.deadline_at.is_not(None)),
                )
            )
            run_timers = s.scalar(
                select(func.count())
                .select_from(RunRow)
                .where(mine, RunRow.state == RUNNING, RunRow.deadline_at.is_not(None))
            )
        for row in late_tasks:
            key = _key(row.run_id, row.qualified_name)
            handle = self._handles.get(key)
            if handle is not None and key not in self._timed_out:
                started = row.started_at
                limit = (row.deadline_at - started).total_seconds() if started and row.deadline_at else 0
                self._timed_out[key] = f"the task timed out after {limit:g}s"
                self.executor.cancel(handle)
        for run in late_runs:
            self.request_cancel(run.run_id, "the run timed out")
        self._timers = bool(pending_timers or run_timers or self._timed_out)

    def arm_timers(self) -> None:
        """Tells the engine that a deadline or backoff exists (checked every 0.2 s)."""
        self._timers = True
        self._wake.set()

    # ----- reading ----------------------------------------------------------------------

    def running_count(self) -> int:
        """Task attempts currently running."""
        return len(self._handles)

    def count_queued(self) -> int:
        """Tasks ready but waiting for a free slot."""
        with self.db.session() as s:
            return int(s.scalar(select(func.count()).select_from(TaskRow).where(TaskRow.state == PENDING)) or 0)

    def log_root(self, run: RunRow, qualified: str, attempt: int) -> str:
        """Where an attempt's artifacts and log are stored."""
        return attempt_root(run.pipeline_root, run.pipeline_name, run.run_id, qualified, attempt)
