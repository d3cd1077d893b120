"""Taking runs over: after a restart, or from another scheduler whose lease expired.

A mixin of :class:`~stepwell_scheduler.engine.driver.Engine`. For each claimed run, every
task attempt the database shows as RUNNING is

* re-attached to when its process still lives (the executor recognises it by pid and
  task file), so it is not started again;
* harvested when its process is gone but left a result file — a *replay*: the previous
  scheduler may have recorded part of the result in the metadata service already, so
  the harvest first looks for what exists (executions are keyed by run, task and
  attempt, and an attempt whose execution id was never stored finds its execution
  that way or records it; output artifacts by their execution's OUTPUT events);
* otherwise queued again (PENDING): it had been claimed but either never started or
  died without a result. Its next launch is a new attempt with its own folder and
  artifact URIs, and the lost attempt's execution is closed as FAILED.

So a finished task is never run again and a running one at most once more.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from stepwell.server import Database
from stepwell_scheduler.engine.direct import DirectRows
from stepwell_scheduler.engine.leases import Leases
from stepwell_scheduler.engine.plan import CONTAINER, IMPORTER, PipelinePlan
from stepwell_scheduler.engine.processes import _SEP, read_json, task_file_path, task_key
from stepwell_scheduler.executors import Executor, TaskHandle
from stepwell_scheduler.metadata_client import MetadataClient
from stepwell_scheduler.models import CANCELING, FINAL_STATES, PENDING, RUNNING, RunRow, TaskRow

log = logging.getLogger(__name__)


def locked_runs(s: Session) -> dict[str, RunRow | None]:
    """The runs the transaction ``s`` has row-locked with :meth:`RecoveryMixin._owned_run`:
    the run when this scheduler held it then, else None."""
    found: dict[str, RunRow | None] = s.info.setdefault("stepwell.locked_runs", {})
    return found


class RecoveryMixin:
    """Run ownership and re-attachment (part of the engine)."""

    db: Database
    direct: DirectRows
    executor: Executor
    metadata: MetadataClient
    leases: Leases
    work_dir: Path
    _handles: dict[str, TaskHandle]
    _started: dict[str, tuple[RunRow, TaskRow, int]]
    _canceling: set[str]
    _plans: dict[str, PipelinePlan]
    _timed_out: dict[str, str]
    _owned: set[str]
    _timers: bool
    _replay: set[str]
    _exited: collections.deque[str]
    _cancels: collections.deque[tuple[str, str]]
    _dirty: set[str]
    _stale: set[str]
    _written: dict[str, set[str] | None]
    _lock: threading.Lock
    _wake: threading.Event
    _task_dirs: dict[str, set[str]]
    _task_file_runs: set[str]

    if TYPE_CHECKING:

        def request_cancel(self, run_id: str, reason: str = "") -> None: ...
        def _forget_view(self, run_id: str) -> None: ...
        def _record_left(self) -> int: ...
        def _queue_changed(self) -> None: ...

    def _owned_run(self, s: Session, run_id: str) -> RunRow | None:
        """The run, row-locked, when this scheduler holds its lease; else None (and the
        run's local state is dropped when another scheduler holds it). Read once per
        transaction: the row lock and the lease it saw hold until the commit."""
        locked = locked_runs(s)
        if run_id in locked:
            return locked[run_id]
        run = self.direct.lock_run(s, run_id)
        if run is not None and run.lease_owner != self.leases.owner:
            self._drop(run_id)
            run = None
        locked[run_id] = run
        return run

    def _holds(self, s: Session, run_id: str) -> bool:
        """:meth:`_owned_run` without loading the run (unless this transaction has): locks
        its row and tells whether this scheduler holds its lease."""
        locked = locked_runs(s)
        if run_id in locked:
            return locked[run_id] is not None
        owner = s.execute(
            select(RunRow.lease_owner).where(RunRow.run_id == run_id).with_for_update()
        ).scalar_one_or_none()
        if owner is None:
            return False
        if owner != self.leases.owner:
            self._drop(run_id)
            return False
        return True

    def _drop(self, run_id: str) -> None:
        """Forgets a run another scheduler has taken over; its task processes keep running
        (the new owner re-attaches to them)."""
        if run_id in self._owned:
            log.warning("scheduler %s no longer holds run %s; leaving it to its new owner", self.leases.owner, run_id)
        self._owned.discard(run_id)
        self._plans.pop(run_id, None)
        self._task_dirs.pop(run_id, None)
        self._task_file_runs.discard(run_id)
        self._forget_view(run_id)
        self._written.pop(run_id, None)  # its new owner reports it
        prefix = run_id + _SEP
        for key in [k for k in self._handles if k.startswith(prefix)]:
            self._handles.pop(key, None)
            self._timed_out.pop(key, None)
            self._started.pop(key, None)
        self._canceling.discard(run_id)

    def adopt_run(self, run_id: str) -> None:
        """Notes a run this scheduler has just taken (StartRun, RetryRun) and wakes the engine."""
        self._queue_changed()
        with self._lock:
            self._owned.add(run_id)
            self._dirty.add(run_id)
            self._stale.add(run_id)
        self._wake.set()

    def _resume(self) -> None:
        """At start: renews (and so proves) this scheduler's id, then takes over runs left
        by dead schedulers, and any it held under the same id before a restart."""
        self.leases.renew()
        with self.db.session() as s:
            held = list(
                s.scalars(
                    select(RunRow.run_id).where(
                        RunRow.lease_owner == self.leases.owner, RunRow.state.not_in(FINAL_STATES)
                    )
                )
            )
        self._reattach(held + self.leases.claim())
        self._record_left()

    def _lease_tick(self) -> None:
        """Periodically: drops runs taken over by others, claims orphaned runs, and applies
        cancellations requested at another scheduler."""
        # Also a safety net: whatever queued a task unnoticed, a claim looks for it now.
        self._queue_changed()
        with self._lock:
            owned = set(self._owned)
        lost = owned - self.leases.still_owned(owned)
        for run_id in lost:
            self._drop(run_id)
        claimed = self.leases.claim()
        if claimed:
            self._reattach(claimed)
        self._sweep_orphans()
        self._record_left()
        for run_id in self.leases.cancel_requests():
            self.request_cancel(run_id)

    def _sweep_orphans(self) -> None:
        """Between steps: a claimed task (RUNNING) of a run this scheduler drives that has
        neither a process handle nor a harvest pending lost its start to an error after
        its claim committed. Its run is taken over again, as after a restart (the task
        is re-attached to, harvested or queued again)."""
        with self._lock:
            owned = set(self._owned)
            pending = set(self._exited)
        if not owned:
            return
        with self.db.session() as s:
            running = s.execute(
                select(TaskRow.run_id, TaskRow.qualified_name)
                .join(RunRow, RunRow.run_id == TaskRow.run_id)
                .where(
                    RunRow.lease_owner == self.leases.owner,
                    TaskRow.state == RUNNING,
                    TaskRow.kind.in_([CONTAINER, IMPORTER]),
                )
            ).all()
        orphaned = sorted(
            {
                run_id
                for run_id, name in running
                if run_id in owned and task_key(run_id, name) not in self._handles and task_key(run_id, name) not in pending
            }
        )
        if orphaned:
            log.warning("tasks claimed but not started in run(s) %s; taking them over again", ", ".join(orphaned))
            self._reattach(orphaned)

    def _reattach(self, run_ids: list[str]) -> None:
        if not run_ids:
            return
        self._queue_changed()  # their queued tasks (and those queued again below)
        # Their backoffs and deadlines too: the timers may be off in a scheduler that had none.
        self._timers = True
        with self.db.session() as s:
            runs = list(
                s.scalars(
                    select(RunRow).where(
                        RunRow.run_id.in_(run_ids),
                        RunRow.lease_owner == self.leases.owner,
                        RunRow.state.not_in(FINAL_STATES),
                    )
                )
            )
            ids = [r.run_id for r in runs]
            for run_id in run_ids:
                self._forget_view(run_id)
            running = list(
                s.scalars(
                    select(TaskRow).where(
                        TaskRow.run_id.in_(ids),
                        TaskRow.state == RUNNING,
                        TaskRow.kind.in_([CONTAINER, IMPORTER]),
                    )
                )
            )
        requeue: list[TaskRow] = []
        replays: list[str] = []
        for row in running:
            key = task_key(row.run_id, row.qualified_name)
            if key in self._handles:
                continue
            result_file = os.path.join(row.task_dir, "result.json") if row.task_dir else ""
            if row.kind == CONTAINER and row.pid > 0 and row.task_dir:
                # Attempts started before the launcher wrote to the task log had a log of its own.
                launcher_log = os.path.join(row.task_dir, "launcher.log")
                if not os.path.exists(launcher_log):
                    launcher_log = os.path.join(row.task_dir, "task.log")
                task_file = str(task_file_path(self.work_dir, row.run_id, row.qualified_name, row.attempt))
                if not os.path.exists(task_file):  # an attempt started before task files had a folder of their own
                    task_file = os.path.join(row.task_dir, "task.json")
                handle = self.executor.adopt(key, row.pid, result_file, launcher_log, task_file)
                if handle is not None:
                    self._handles[key] = handle
                    log.info("re-attached to task %s of run %s (pid %d)", row.qualified_name, row.run_id, row.pid)
                    continue
            # A record cut short (its launcher killed while writing it) is no result.
            if result_file and read_json(result_file) is not None:
                replays.append(key)
            else:
                requeue.append(row)
        self._requeue(requeue)
        with self._lock:
            self._owned.update(ids)
            self._replay.update(replays)
            self._exited.extend(replays)
            self._dirty.update(ids)
            self._cancels.extend((r.run_id, "") for r in runs if r.state == CANCELING)
        if runs:
            log.info("driving %d run(s): %s", len(ids), ", ".join(ids))
        self._wake.set()

    def _requeue(self, rows: list[TaskRow]) -> None:
        """Puts claimed attempts that left no process and no result back in the queue.

        A lost attempt whose execution was recorded is closed as FAILED first (closing is
        idempotent, so a crash in between only repeats it); an attempt that may have
        recorded one without storing its id is marked for a lookup at its next launch.
        """
        for row in rows:
            if row.execution_id:
                try:
                    self.metadata.finish_execution(
                        row.execution_id, "FAILED", {}, error="the scheduler stopped while this attempt ran; it runs again"
                    )
                except Exception as err:
                    log.warning("could not close the lost execution %s: %s", row.execution_id, err)
        if not rows:
            return
        with self.db.session() as s:
            for row in sorted(rows, key=lambda r: (r.run_id, r.id)):
                # Only the attempt looked at, of a run still held (locked till the commit):
                # a scheduler that stalled since may have lost the run to one that has
                # started the task again meanwhile.
                if self._owned_run(s, row.run_id) is None:
                    continue
                fresh = s.get(TaskRow, row.id)
                if fresh is None or fresh.state != RUNNING or fresh.attempt != row.attempt:
                    continue
                log.info("task %s of run %s left no process and no result; queuing it again", row.qualified_name, row.run_id)
                fresh.state, fresh.pid, fresh.deadline_at = PENDING, 0, None
                fresh.lookup_execution = not fresh.execution_id
        self._queue_changed()
