"""The scheduler's service layer: accepting, cancelling and describing runs.

Owns the database transactions of the RPCs; the engine does the driving.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from stepwell.errors import FailedPrecondition, InvalidArgument, NotFound
from stepwell.ir import load_pipeline_spec, resolve_parameters
from stepwell.server import Database
from stepwell.storage import StoreRouter, is_s3_uri
from stepwell.v1 import scheduler_pb2
from stepwell_scheduler.engine import Engine
from stepwell_scheduler.engine.dag import COMPLETED, now
from stepwell_scheduler.engine.plan import DAG, LOOP, PipelinePlan
from stepwell_scheduler.models import (
    CANCELED,
    FAILED,
    FINAL_STATES,
    PENDING,
    RUNNING,
    RunRow,
    TaskRow,
)
from stepwell_scheduler.status import RunSnapshot, StatusCache


class ChangeBoard:
    """Per-run change counters that ``WatchRun`` streams wait on."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._versions: dict[str, int] = {}

    def bump(self, run_id: str) -> None:
        """Records that ``run_id`` changed and wakes its watchers."""
        with self._cond:
            self._versions[run_id] = self._versions.get(run_id, 0) + 1
            self._cond.notify_all()

    def version(self, run_id: str) -> int:
        with self._cond:
            return self._versions.get(run_id, 0)

    def wait(self, run_id: str, seen: int, timeout: float) -> int:
        """Blocks until ``run_id``'s version differs from ``seen`` or ``timeout`` passes."""
        with self._cond:
            self._cond.wait_for(lambda: self._versions.get(run_id, 0) != seen, timeout=timeout)
            return self._versions.get(run_id, 0)


class SchedulerService:
    """What the Scheduler RPCs do, independent of gRPC."""

    def __init__(self, database: Database, engine: Engine, default_root: str, changes: ChangeBoard) -> None:
        self.db = database
        self.engine = engine
        self.default_root = default_root
        self.changes = changes
        self._statuses = StatusCache()

    def start_run(
        self,
        run_id: str,
        pipeline_spec: dict[str, Any],
        parameters: dict[str, Any],
        pipeline_root: str = "",
        namespace: str = "",
        options: dict[str, Any] | None = None,
    ) -> bool:
        """Records and starts a run; returns True when the run was already started.

        ``options``: ``disable_cache``, ``timeout_seconds``, ``task_timeout_seconds``,
        ``platform_spec`` (see ``RunOptions`` in scheduler.proto).
        """
        if not run_id:
            raise InvalidArgument("run_id is required")
        with self.db.session() as s:
            if s.get(RunRow, run_id) is not None:
                return True
        doc = load_pipeline_spec(pipeline_spec)
        values = resolve_parameters(doc.root_parameters, parameters)
        root = pipeline_root or doc.spec.get("defaultPipelineRoot") or self.default_root
        if not is_s3_uri(root):
            if root.startswith("file://"):
                root = root[len("file://") :]
            if "://" in root:
                raise InvalidArgument(f"pipeline_root {root!r}: use a folder, file://, s3:// or minio://")
            root = os.path.abspath(os.path.expanduser(root))
        options = dict(options or {})
        platform = ((options.get("platform_spec") or {}).get("platforms") or {}).get("kubernetes") or {}
        timeout = float(options.get("timeout_seconds") or 0) or float(
            (platform.get("pipelineConfig") or {}).get("activeDeadlineSeconds") or 0
        )
        created = now()
        try:
            with self.db.session() as s:
                if s.get(RunRow, run_id) is not None:
                    return True
                s.add(
                    RunRow(
                        run_id=run_id,
                        pipeline_name=doc.name,
                        namespace=namespace,
                        spec=doc.spec,
                        parameters=values,
                        pipeline_root=root,
                        state=PENDING,
                        error="",
                        outputs={},
                        pipeline_context_id=0,
                        run_context_id=0,
                        created_at=created,
                        options=options,
                        deadline_at=created + timedelta(seconds=timeout) if timeout else None,
                        # The scheduler that accepts a run drives it.
                        lease_owner=self.engine.owner,
                        lease_expires_at=self.engine.leases.expiry(),
                        cancel_requested=False,
                    )
                )
        except IntegrityError:
            # The same run reached another scheduler on this database at the same time.
            with self.db.session() as s:
                if s.get(RunRow, run_id) is not None:
                    return True
            raise
        if timeout:
            self.engine.arm_timers()
        self.engine.adopt_run(run_id)
        return False

    def retry_run(self, run_id: str) -> None:
        """Restarts a FAILED or CANCELED run from where it failed.

        Failed and canceled tasks (and exit handlers, whose upstream state changes) are
        forgotten so that they run again with freshly resolved inputs; DAGs and loops that
        did not succeed are reopened; succeeded and skipped tasks keep their outputs.
        """
        with self.db.session() as s:
            # Locked: two retries of one run (at two schedulers) must not both reset it.
            run = s.get(RunRow, run_id, with_for_update=True)
            if run is None:
                raise NotFound(f"run {run_id!r} is not known to the scheduler")
            if run.state not in (FAILED, CANCELED):
                raise FailedPrecondition(f"run {run_id!r} is {run.state}; only FAILED or CANCELED runs can be retried")
            plan = PipelinePlan(run.spec)
            for row in list(s.scalars(select(TaskRow).where(TaskRow.run_id == run_id))):
                exit_task = _waits_for_completion(plan, row.qualified_name)
                if row.state in (FAILED, CANCELED) and (row.kind not in (DAG, LOOP) or row.started_at is None):
                    s.delete(row)
                elif row.state in (FAILED, CANCELED):
                    row.state, row.error, row.finished_at = RUNNING, "", None
                elif exit_task and row.state in FINAL_STATES:
                    s.delete(row)
                elif row.state == PENDING:
                    row.not_before = None
            run.state, run.error, run.finished_at, run.outputs = RUNNING, "", None, {}
            run.lease_owner, run.lease_expires_at = self.engine.owner, self.engine.leases.expiry()
            run.cancel_requested = False
            options = {k: v for k, v in (run.options or {}).items() if k != "timed_out"}
            run.options = options
            timeout = float(options.get("timeout_seconds") or 0)
            run.deadline_at = now() + timedelta(seconds=timeout) if timeout else None
        self.engine.arm_timers()
        self.engine.adopt_run(run_id)

    def task_log(self, run_id: str, task_id: str) -> tuple[str, str]:
        """``(text, log_uri)`` of a task's stored log (the newest attempt's)."""
        with self.db.session() as s:
            row = s.scalar(select(TaskRow).where(TaskRow.run_id == run_id, TaskRow.qualified_name == task_id))
            if row is None:
                if s.get(RunRow, run_id) is None:
                    raise NotFound(f"run {run_id!r} is not known to the scheduler")
                raise NotFound(f"run {run_id!r} has no task {task_id!r}")
            log_uri, task_dir = row.log_uri, row.task_dir
        return read_log(self.engine.stores, log_uri, task_dir), log_uri

    def cancel_run(self, run_id: str) -> None:
        """Records the cancel request; the scheduler driving the run applies it (at once
        when that is this one, else at its next lease renewal). A finished run is left as it is."""
        with self.db.session() as s:
            run = s.get(RunRow, run_id, with_for_update=True)
            if run is None:
                raise NotFound(f"run {run_id!r} is not known to the scheduler")
            if run.state in FINAL_STATES:
                return
            run.cancel_requested = True
            mine = run.lease_owner == self.engine.owner
        if mine:
            self.engine.request_cancel(run_id)

    def unfinished_runs(self) -> list[str]:
        """Runs that are still going (their status is worth re-sending to a new API address)."""
        with self.db.session() as s:
            return list(s.scalars(select(RunRow.run_id).where(RunRow.state.not_in(FINAL_STATES))))

    def status(self, run_id: str) -> scheduler_pb2.RunStatus:
        """The run's whole current status; :class:`NotFound` for an unknown run."""
        found = self.find_status(run_id)
        if found is None:
            raise NotFound(f"run {run_id!r} is not known to the scheduler")
        return found.status()

    def note_changed(self, run_id: str, names: Iterable[str] | None) -> None:
        """The engine wrote (and committed) these task rows of ``run_id`` (None: unknown which)."""
        self._statuses.note_changed(run_id, names)

    def find_status(self, run_id: str) -> RunSnapshot | None:
        """The run's current state and tasks, or None for an unknown run (what the status
        reporter compares with what the API service last acknowledged)."""
        with self.db.session() as s:
            return self._statuses.snapshot(s, run_id)


def _waits_for_completion(plan: PipelinePlan, qualified: str) -> bool:
    try:
        task = plan.task(qualified)
    except InvalidArgument:
        return False
    return (task.spec.get("triggerPolicy") or {}).get("strategy") == COMPLETED


def read_log(stores: StoreRouter, log_uri: str, task_dir: str) -> str:
    """A task log's text from the store, else from the task's local folder ("" when none)."""
    if log_uri:
        try:
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "log")
                stores.for_uri(log_uri).get(log_uri, path)
                with open(path, encoding="utf-8", errors="replace") as f:
                    return f.read()
        except Exception:
            pass
    local = os.path.join(task_dir, "task.log") if task_dir else ""
    if local and os.path.exists(local):
        with open(local, encoding="utf-8", errors="replace") as f:
            return f.read()
    return ""
