"""The engine: one thread that drives every active run.

Each step it harvests finished task attempts, applies cancellations, advances the
DAGs of runs that changed, and dispatches queued tasks up to ``max_parallel_tasks``.
All state is written to the database; the in-memory maps (plans, handles) are caches
that :meth:`Engine.resume` rebuilds after a restart. Calls to the metadata service are
made outside database transactions, and a metadata failure never fails a task.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from stepwell.server import Database
from stepwell.storage import LocalStore, is_s3_uri
from stepwell_scheduler.engine.dag import DagAdvancer, job_placeholders, now
from stepwell_scheduler.engine.plan import CONTAINER, IMPORTER, PipelinePlan
from stepwell_scheduler.engine.provision import attempt_root, build_task_file, run_root
from stepwell_scheduler.executors import Executor, LaunchRequest, TaskHandle
from stepwell_scheduler.metadata_client import (
    CONTAINER_EXECUTION,
    IMPORTER_EXECUTION,
    MetadataClient,
)
from stepwell_scheduler.models import (
    CANCELED,
    CANCELING,
    FAILED,
    FINAL_STATES,
    PENDING,
    RUNNING,
    SUCCEEDED,
    RunRow,
    TaskRow,
)
from stepwell_scheduler.settings import SchedulerSettings

log = logging.getLogger(__name__)

_SEP = "\x00"


def _key(run_id: str, qualified: str) -> str:
    return f"{run_id}{_SEP}{qualified}"


class Engine:
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
        self.settings = settings
        self.executor = executor
        self.metadata = metadata
        self.on_change = on_change
        self.work_dir = settings.resolved_work_dir()
        self._plans: dict[str, PipelinePlan] = {}
        self._handles: dict[str, TaskHandle] = {}
        self._exited: collections.deque[str] = collections.deque()
        self._cancels: collections.deque[str] = collections.deque()
        self._dirty: set[str] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        executor.on_exit = self._exited_callback

    # ----- life cycle -------------------------------------------------------------------

    def start(self) -> None:
        """Resumes unfinished runs from the database and starts the engine thread."""
        self.resume()
        self._thread = threading.Thread(target=self._loop, name="scheduler-engine", daemon=True)
        self._thread.start()

    def stop(self, kill_tasks: bool = False) -> None:
        """Stops the engine thread; task processes keep running unless ``kill_tasks``."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if kill_tasks:
            for handle in list(self._handles.values()):
                self.executor.cancel(handle)
        self.executor.shutdown()

    def wake(self, run_id: str | None = None) -> None:
        """Asks the engine thread to look at ``run_id`` (or just to run a step) soon."""
        with self._lock:
            if run_id:
                self._dirty.add(run_id)
        self._wake.set()

    def request_cancel(self, run_id: str) -> None:
        """Queues the cancellation of a run; the engine kills its tasks and ends it CANCELED."""
        with self._lock:
            self._cancels.append(run_id)
        self._wake.set()

    def _exited_callback(self, key: str) -> None:
        with self._lock:
            self._exited.append(key)
        self._wake.set()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(timeout=1.0)
            self._wake.clear()
            if self._stopping.is_set():
                break
            try:
                self.step()
            except Exception:
                log.exception("scheduler engine step failed; retrying")
                self._stopping.wait(0.5)
                self._wake.set()

    # ----- one step ---------------------------------------------------------------------

    def step(self) -> None:
        """Harvests, cancels, advances and dispatches until nothing more changes."""
        for _ in range(100):
            with self._lock:
                exited = list(self._exited)
                self._exited.clear()
                cancels = list(self._cancels)
                self._cancels.clear()
                dirty = set(self._dirty)
                self._dirty.clear()
            changed: set[str] = set()
            for key in exited:
                run_id = self._harvest(key)
                if run_id:
                    dirty.add(run_id)
            for run_id in cancels:
                if self._apply_cancel(run_id):
                    dirty.add(run_id)
            for run_id in sorted(dirty):
                self._advance(run_id)
                changed.add(run_id)
            dispatched = self._dispatch()
            changed |= dispatched
            for run_id in changed:
                self.on_change(run_id)
            with self._lock:
                again = bool(self._exited or self._cancels or self._dirty)
            if not again:
                return

    def _plan(self, run: RunRow) -> PipelinePlan:
        plan = self._plans.get(run.run_id)
        if plan is None:
            plan = self._plans[run.run_id] = PipelinePlan(run.spec)
        return plan

    def _advance(self, run_id: str) -> None:
        with self.db.session() as s:
            run = s.get(RunRow, run_id)
            if run is None or run.state in FINAL_STATES:
                return
            needs_contexts = run.state == PENDING
        if needs_contexts:
            pipeline_ctx, run_ctx = self._contexts(run)
            with self.db.session() as s:
                fresh = s.get(RunRow, run_id)
                if fresh is None:
                    return
                if fresh.state == PENDING:
                    fresh.state = RUNNING
                fresh.pipeline_context_id, fresh.run_context_id = pipeline_ctx, run_ctx
        with self.db.session() as s:
            run = s.get(RunRow, run_id)
            if run is None or run.state in FINAL_STATES:
                return
            rows = {r.qualified_name: r for r in s.scalars(select(TaskRow).where(TaskRow.run_id == run_id))}
            advancer = DagAdvancer(run=run, plan=self._plan(run), rows=rows, add=s.add)
            final = advancer.advance()
        if final is not None:
            self._plans.pop(run_id, None)
            log.info("run %s ended %s", run_id, final)

    def _contexts(self, run: RunRow) -> tuple[int, int]:
        try:
            return self.metadata.run_contexts(
                run.pipeline_name,
                run.run_id,
                run_root(run.pipeline_root, run.pipeline_name, run.run_id),
                run.namespace,
            )
        except Exception as err:
            log.warning("could not record run %s in the metadata service: %s", run.run_id, err)
            return 0, 0

    # ----- dispatch ---------------------------------------------------------------------

    def _dispatch(self) -> set[str]:
        free = self.settings.max_parallel_tasks - len(self._handles)
        if free <= 0:
            return set()
        with self.db.session() as s:
            queued = list(
                s.execute(
                    select(TaskRow, RunRow)
                    .join(RunRow, RunRow.run_id == TaskRow.run_id)
                    .where(TaskRow.state == PENDING, RunRow.state == RUNNING)
                    .order_by(TaskRow.ready_at, TaskRow.id)
                    .limit(free)
                )
            )
        touched: set[str] = set()
        for row, run in queued:
            if _key(run.run_id, row.qualified_name) in self._handles:
                continue
            if row.kind == IMPORTER:
                self._run_importer(run, row)
                self.wake(run.run_id)
            else:
                self._launch(run, row)
            touched.add(run.run_id)
        return touched

    def _attempt_dir(self, run_id: str, qualified: str, attempt: int) -> Path:
        return self.work_dir / "runs" / run_id / "tasks" / qualified / f"a{attempt}"

    def _launch(self, run: RunRow, row: TaskRow) -> None:
        plan = self._plan(run)
        task = plan.task(row.qualified_name)
        attempt = row.attempt + 1
        attempt_dir = self._attempt_dir(run.run_id, row.qualified_name, attempt)
        key = _key(run.run_id, row.qualified_name)
        try:
            attempt_dir.mkdir(parents=True, exist_ok=True)
            task_file = build_task_file(
                run_id=run.run_id,
                pipeline_name=run.pipeline_name,
                pipeline_root=run.pipeline_root,
                task=task,
                executor=plan.executor(task.component),
                inputs=row.inputs or {},
                attempt=attempt,
                attempt_dir=attempt_dir,
                job=job_placeholders(run, row.name),
            )
            task_path = str(attempt_dir / "task.json")
            task_file.save(task_path)
            env = {**os.environ, **self.settings.storage_env()}
            handle = self.executor.submit(
                LaunchRequest(
                    key=key,
                    task_file=task_path,
                    result_file=task_file.result_file,
                    launcher_log=str(attempt_dir / "launcher.log"),
                    cwd=str(attempt_dir),
                    env=env,
                    image=str(task_file.container.get("image", "")),
                )
            )
        except Exception as err:
            log.exception("could not start task %s of run %s", row.qualified_name, run.run_id)
            self._finish_row(run.run_id, row.qualified_name, FAILED, error=f"could not start the task: {err}")
            self.wake(run.run_id)
            return
        started = now()
        self._handles[key] = handle
        with self.db.session() as s:
            fresh = s.get(TaskRow, row.id)
            if fresh is not None:
                fresh.state, fresh.started_at, fresh.attempt = RUNNING, started, attempt
                fresh.pid, fresh.task_dir, fresh.log_uri = handle.pid, str(attempt_dir), task_file.log_uri
        execution_id = self._start_execution(run, row, CONTAINER_EXECUTION, attempt, task_file.container.get("image", ""))
        if execution_id:
            with self.db.session() as s:
                fresh = s.get(TaskRow, row.id)
                if fresh is not None:
                    fresh.execution_id = execution_id

    def _start_execution(self, run: RunRow, row: TaskRow, execution_type: str, attempt: int, image: str) -> int:
        try:
            execution_id = self.metadata.start_execution(
                execution_type=execution_type,
                name=row.qualified_name,
                context_ids=[run.pipeline_context_id, run.run_context_id],
                inputs=(row.inputs or {}).get("parameters") or {},
                custom_properties={
                    "display_name": row.display_name or row.name,
                    "task_name": row.name,
                    "parent_task": row.parent,
                    "image": image,
                    "attempt": attempt,
                    "run_id": run.run_id,
                },
            )
            self.metadata.record_inputs(execution_id, (row.inputs or {}).get("artifacts") or {})
            return execution_id
        except Exception as err:
            log.warning("could not record task %s in the metadata service: %s", row.qualified_name, err)
            return 0

    def _run_importer(self, run: RunRow, row: TaskRow) -> None:
        """Importers need no process: the artifact already exists; record it and finish."""
        plan = self._plan(run)
        task = plan.task(row.qualified_name)
        spec = plan.executor(task.component).get("importer") or {}
        source = spec.get("artifactUri") or {}
        uri = source.get("constant")
        if uri is None and source.get("runtimeParameter"):
            uri = ((row.inputs or {}).get("parameters") or {}).get(source["runtimeParameter"])
        if not isinstance(uri, str) or not uri:
            self._finish_row(run.run_id, row.qualified_name, FAILED, error="the importer has no artifact URI")
            return
        title = str((spec.get("typeSchema") or {}).get("schemaTitle") or "system.Artifact")
        record: dict[str, Any] = {"uri": uri, "metadata": dict(spec.get("metadata") or {}), "schema_title": title}
        try:
            info = LocalStore().stat(uri) if not is_s3_uri(uri) and uri.startswith(("/", "file://")) else None
            record["size"] = info.size if info else 0
        except Exception:
            record["size"] = 0
        execution_id = self._start_execution(run, row, IMPORTER_EXECUTION, 1, "")
        outputs = {"parameters": {}, "artifacts": {"artifact": [record]}}
        self._record_outputs(run, execution_id, outputs, SUCCEEDED)
        with self.db.session() as s:
            fresh = s.get(TaskRow, row.id)
            if fresh is not None:
                fresh.started_at = fresh.started_at or now()
                fresh.execution_id = execution_id
                fresh.attempt = 1
        self._finish_row(run.run_id, row.qualified_name, SUCCEEDED, outputs=outputs)

    # ----- harvest ----------------------------------------------------------------------

    def _harvest(self, key: str) -> str | None:
        run_id, _, qualified = key.partition(_SEP)
        handle = self._handles.pop(key, None)
        with self.db.session() as s:
            row = s.scalar(select(TaskRow).where(TaskRow.run_id == run_id, TaskRow.qualified_name == qualified))
            run = s.get(RunRow, run_id)
        if row is None or run is None or row.state != RUNNING:
            return run_id
        result_file = os.path.join(row.task_dir, "result.json")
        result = _read_json(result_file)
        if result is None:
            code = handle.exit_code if handle else None
            tail = self.executor.logs(handle) if handle else ""
            error = f"the launcher ended (exit status {code}) without reporting a result"
            state, outputs, log_tail, log_uri = FAILED, {}, "\n".join(tail.splitlines()[-30:]), row.log_uri
        else:
            state = SUCCEEDED if result.get("status") == SUCCEEDED else FAILED
            error = str(result.get("error") or "")
            outputs = {"parameters": result.get("parameters") or {}, "artifacts": result.get("artifacts") or {}}
            log_tail = str(result.get("log_tail") or "")
            log_uri = str(result.get("log_uri") or "")
        if run.state == CANCELING and state != SUCCEEDED:
            state, error = CANCELED, "canceled"
        if row.execution_id:
            self._record_outputs(run, row.execution_id, outputs, state)
        self._finish_row(
            run_id, qualified, state, error=error, outputs=outputs, log_tail=log_tail, log_uri=log_uri
        )
        return run_id

    def _record_outputs(self, run: RunRow, execution_id: int, outputs: dict[str, Any], state: str) -> None:
        """Records produced artifacts (filling in their ids) and the execution's final state."""
        if not execution_id:
            return
        try:
            artifacts = outputs.get("artifacts") or {}
            if state == SUCCEEDED and artifacts:
                ids = self.metadata.record_outputs(
                    execution_id, artifacts, [run.pipeline_context_id, run.run_context_id]
                )
                for name, records in artifacts.items():
                    for record, artifact_id in zip(records, ids.get(name, []), strict=False):
                        record["artifact_id"] = artifact_id
            self.metadata.finish_execution(execution_id, state, outputs.get("parameters") or {})
        except Exception as err:
            log.warning("could not record the outputs of execution %s: %s", execution_id, err)

    def _finish_row(
        self,
        run_id: str,
        qualified: str,
        state: str,
        *,
        error: str = "",
        outputs: dict[str, Any] | None = None,
        log_tail: str = "",
        log_uri: str = "",
    ) -> None:
        with self.db.session() as s:
            row = s.scalar(select(TaskRow).where(TaskRow.run_id == run_id, TaskRow.qualified_name == qualified))
            if row is None:
                return
            row.state, row.error, row.finished_at = state, error, now()
            row.outputs = outputs or {}
            row.log_tail = log_tail
            if log_uri:
                row.log_uri = log_uri

    # ----- cancel and resume ------------------------------------------------------------

    def _apply_cancel(self, run_id: str) -> bool:
        with self.db.session() as s:
            run = s.get(RunRow, run_id)
            if run is None or run.state in FINAL_STATES:
                return False
            run.state = CANCELING
            for row in s.scalars(select(TaskRow).where(TaskRow.run_id == run_id, TaskRow.state == PENDING)):
                row.state, row.error, row.finished_at = CANCELED, "canceled", now()
        prefix = run_id + _SEP
        for key, handle in list(self._handles.items()):
            if key.startswith(prefix):
                self.executor.cancel(handle)
        return True

    def resume(self) -> None:
        """Re-attaches to the work of unfinished runs after a (re)start."""
        with self.db.session() as s:
            runs = list(s.scalars(select(RunRow).where(RunRow.state.not_in(FINAL_STATES))))
            running = list(
                s.scalars(
                    select(TaskRow).where(
                        TaskRow.run_id.in_([r.run_id for r in runs]),
                        TaskRow.state == RUNNING,
                        TaskRow.kind == CONTAINER,
                    )
                )
            )
        requeue: list[int] = []
        for row in running:
            key = _key(row.run_id, row.qualified_name)
            result_file = os.path.join(row.task_dir, "result.json")
            task_file = os.path.join(row.task_dir, "task.json")
            launcher_log = os.path.join(row.task_dir, "launcher.log")
            handle = self.executor.adopt(key, row.pid, result_file, launcher_log, task_file)
            if handle is not None:
                self._handles[key] = handle
                log.info("re-attached to task %s of run %s (pid %d)", row.qualified_name, row.run_id, row.pid)
            elif os.path.exists(result_file):
                self._exited.append(key)
            else:
                requeue.append(row.id)
        if requeue:
            with self.db.session() as s:
                for row_id in requeue:
                    fresh = s.get(TaskRow, row_id)
                    if fresh is not None:
                        fresh.state, fresh.pid = PENDING, 0
        with self._lock:
            self._dirty.update(r.run_id for r in runs)
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


def _read_json(path: str) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None
