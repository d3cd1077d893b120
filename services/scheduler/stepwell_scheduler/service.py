"""The scheduler's service layer: accepting, cancelling and describing runs.

Owns the database transactions of the RPCs; the engine does the driving.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from sqlalchemy import select

from stepwell.errors import InvalidArgument, NotFound
from stepwell.ir import load_pipeline_spec, resolve_parameters
from stepwell.server import Database
from stepwell.storage import is_s3_uri
from stepwell.v1 import scheduler_pb2
from stepwell_scheduler.engine import Engine
from stepwell_scheduler.engine.dag import now
from stepwell_scheduler.models import FINAL_STATES, PENDING, RunRow, TaskRow
from stepwell_scheduler.status import run_status


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

    def start_run(
        self,
        run_id: str,
        pipeline_spec: dict[str, Any],
        parameters: dict[str, Any],
        pipeline_root: str = "",
        namespace: str = "",
    ) -> bool:
        """Records and starts a run; returns True when the run was already started."""
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
                    created_at=now(),
                )
            )
        self.engine.wake(run_id)
        return False

    def cancel_run(self, run_id: str) -> None:
        """Asks the engine to cancel the run (a finished run is left as it is)."""
        with self.db.session() as s:
            run = s.get(RunRow, run_id)
            if run is None:
                raise NotFound(f"run {run_id!r} is not known to the scheduler")
            if run.state in FINAL_STATES:
                return
        self.engine.request_cancel(run_id)

    def unfinished_runs(self) -> list[str]:
        """Runs that are still going (their status is worth re-sending to a new API address)."""
        with self.db.session() as s:
            return list(s.scalars(select(RunRow.run_id).where(RunRow.state.not_in(FINAL_STATES))))

    def status(self, run_id: str) -> scheduler_pb2.RunStatus:
        """The run's current status; :class:`NotFound` for an unknown run."""
        found = self.find_status(run_id)
        if found is None:
            raise NotFound(f"run {run_id!r} is not known to the scheduler")
        return found

    def find_status(self, run_id: str) -> scheduler_pb2.RunStatus | None:
        """The run's current status, or None for an unknown run."""
        with self.db.session() as s:
            run = s.get(RunRow, run_id)
            if run is None:
                return None
            rows = list(s.scalars(select(TaskRow).where(TaskRow.run_id == run_id)))
            return run_status(run, rows)
