"""Starting the processes of claimed task attempts, in the durable order.

A mixin of :class:`~stepwell_scheduler.engine.driver.Engine` (through
:class:`~stepwell_scheduler.engine.launch.LaunchMixin`). For each batch of attempts whose
number and folder are stored: the task files are written, the processes started, the
executions recorded in the metadata service (one call), and pids and execution ids
stored (one statement). :mod:`.launch` claims the tasks; :mod:`.recovery` relies on this
order after a crash between any two of these steps.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Table, bindparam, exists, inspect, update
from sqlalchemy.orm.attributes import set_committed_value

from stepwell.server import Database
from stepwell_scheduler.engine.dag import job_placeholders, now
from stepwell_scheduler.engine.failpoints import Failpoints
from stepwell_scheduler.engine.leases import Leases
from stepwell_scheduler.engine.plan import PipelinePlan
from stepwell_scheduler.engine.provision import (
    attempt_log_uri,
    build_task_file,
    task_timeout,
)
from stepwell_scheduler.executors import Executor, LaunchRequest, TaskHandle
from stepwell_scheduler.metadata_client import MetadataClient
from stepwell_scheduler.models import FAILED, RUNNING, RunRow, TaskRow
from stepwell_scheduler.settings import SchedulerSettings

log = logging.getLogger(__name__)

_SEP = "\x00"


def task_key(run_id: str, qualified: str) -> str:
    """The executor key of a run's task."""
    return f"{run_id}{_SEP}{qualified}"



class ProcessMixin:
    """Starting task processes (part of the engine)."""

    db: Database
    settings: SchedulerSettings
    executor: Executor
    metadata: MetadataClient
    #: Runs whose folder of task files this engine has made (dropped with ``_task_dirs``).
    _task_file_runs: set[str]
    work_dir: Path
    _handles: dict[str, TaskHandle]
    _started: dict[str, tuple[RunRow, TaskRow, int]]
    #: Attempts started whose executions are not recorded yet (see :mod:`.recorder`).
    _pending_starts: list[_Prepared]
    #: The runs this engine holds (see :mod:`.recovery`).
    _owned: set[str]
    on_change: Callable[[str], None]
    _timers: bool
    failpoint: Failpoints
    leases: Leases
    #: Per run: its task folders when this engine first started one of its tasks (see
    #: :meth:`_had_folder`); dropped when the run ends here or leaves this engine.
    _task_dirs: dict[str, set[str]]

    if TYPE_CHECKING:  # provided by the engine and the other mixins

        def _plan(self, run: RunRow) -> PipelinePlan: ...
        def wake(self, run_id: str | None = None) -> None: ...
        def _wrote(self, run_id: str, qualified: str | None) -> None: ...
        def _finish_row(self, run_id: str, qualified: str, state: str, **kwargs: Any) -> None: ...
        def _record_outputs(self, run: RunRow, execution_id: int, outputs: dict[str, Any], state: str) -> None: ...
        def _start_execution(
            self, run: RunRow, row: TaskRow, execution_type: str, attempt: int, image: str, lookup: bool | None = None
        ) -> int: ...

    def _had_folder(self, run_id: str, qualified: str) -> bool:
        """Whether the task may have had attempt folders before this engine began to
        drive the run's current execution: only then can an attempt number be taken
        already (RetryRun recreates rows, counting from 1 again). One listing per run, kept
        until the run ends here, instead of a file system lookup per start (0.1-0.2 ms on
        a slow disk, on the path from a claim to its process)."""
        found = self._task_dirs.get(run_id)
        if found is None:
            try:
                found = set(os.listdir(self.work_dir / "runs" / run_id / "tasks"))
            except OSError:
                found = set()
            self._task_dirs[run_id] = found
        return qualified.split("/", 1)[0] in found

    def _attempt_dir(self, run_id: str, qualified: str, attempt: int) -> Path:
        return self.work_dir / "runs" / run_id / "tasks" / qualified / f"a{attempt}"

    def _task_file(self, run_id: str, qualified: str, attempt: int) -> Path:
        return task_file_path(self.work_dir, run_id, qualified, attempt)

    def _new_attempt(self, run: RunRow, row: TaskRow) -> _Prepared:
        """The next attempt of a claimed task: its number, folder and log URI."""
        attempt = row.attempt + 1
        attempt_dir = self._attempt_dir(run.run_id, row.qualified_name, attempt)
        if self._had_folder(run.run_id, row.qualified_name):
            while (attempt_dir / "result.json").exists():  # a retried run recreated the row
                attempt += 1
                attempt_dir = self._attempt_dir(run.run_id, row.qualified_name, attempt)
        log_uri = attempt_log_uri(run.pipeline_root, run.pipeline_name, run.run_id, row.qualified_name, attempt)
        return _Prepared(run, row, attempt, attempt_dir, log_uri, lookup=row.lookup_execution, epoch=self.leases.epoch)

    def _launch(self, attempts: list[_Prepared]) -> None:
        """Starts a process for each stored attempt, in the durable order, batch by
        batch: task files written; the runs' leases renewed again if the claim is no
        longer recent; processes started; pids stored (one statement). Then, on the
        recorder's thread (:mod:`.recorder`): executions recorded (one metadata call);
        and, back on the engine's, execution ids stored (one statement).

        The execution is recorded after the process starts, so that it is not on the
        path from a claim to a running process, nor on the path from the next exit to
        the next start. A crash before its id is stored leaves
        the attempt with ``lookup_execution``: a recovery re-attaches to the process by
        its pid and finds the execution by run, task and attempt (or records it) before
        it ends it.
        """
        env = {**os.environ, **self.settings.storage_env()}
        prepared: list[_Prepared] = []
        for p in attempts:
            try:
                self._write_task_file(p, env)
            except Exception as err:
                self._fail_start(p.run, p.row, 0, err)
                continue
            prepared.append(p)
        if not prepared:
            return
        self.failpoint("attempt-stored", len(prepared))
        prepared = self._still_held(prepared)
        started: list[_Prepared] = []
        requests = [p.request for p in prepared if p.request is not None]
        # All at once: a fan-out's processes start with one round trip to the executor.
        try:
            handles: list[TaskHandle | Exception] = self.executor.submit_many(requests)
        except Exception as err:  # the executor's own failure: none of them started
            handles = [err for _ in requests]
        for p, handle in zip(prepared, handles, strict=True):
            assert p.request is not None
            if isinstance(handle, Exception):
                self._fail_start(p.run, p.row, 0, handle)
                continue
            self._handles[p.request.key] = handle
            p.pid = handle.pid
            if p.timeout:
                self._timers = True
            started.append(p)
        if not started:
            return
        self.failpoint("submitted", len(started))
        stamp = now()
        with self.db.autocommit() as connection:
            self._update_claimed(
                connection,
                [
                    {
                        "row_id": p.row.id,
                        "pid": p.pid,
                        "deadline_at": stamp + timedelta(seconds=p.timeout) if p.timeout else None,
                    }
                    for p in started
                ],
            )
        for p in started:
            assert p.request is not None
            # The row as stored now (the claim or _store_attempts wrote the attempt), kept
            # clean: a harvest merges it into its transaction rather than reading it back.
            stored(
                p.row,
                attempt=p.attempt,
                task_dir=str(p.attempt_dir),
                log_uri=p.log_uri,
                pid=p.pid,
                lookup_execution=True,
                deadline_at=stamp + timedelta(seconds=p.timeout) if p.timeout else None,
            )
            self._started[p.request.key] = (p.run, p.row, p.epoch)
        # Their executions are recorded on the recorder's thread (see .recorder).
        self._pending_starts += started

    def _still_held(self, prepared: list[_Prepared]) -> list[_Prepared]:
        """The attempts whose runs this scheduler still holds. The claim renewed their
        leases; when it is no longer recent (slow cache lookups, a stalled process), they
        are renewed again here (compare-and-set), so that no other scheduler can have
        queued an attempt again that is about to start here."""
        oldest = min(p.claimed_at for p in prepared)
        if time.monotonic() - oldest < self.leases.seconds / 3 and self.leases.healthy():
            return prepared
        with self.db.session() as s:
            held = self.leases.hold_on(s.connection(), {p.run.run_id for p in prepared})
        return self._only_held(prepared, held)

    def _only_held(self, prepared: list[_Prepared], held: set[str]) -> list[_Prepared]:
        """The attempts of the runs in ``held``. The others' runs have a new owner since
        the claim (this process stalled), which queues those attempts again: starting
        them here could run a task twice."""
        for p in prepared:
            if p.run.run_id not in held:
                log.warning("not starting task %s of run %s: another scheduler took the run over", p.row.qualified_name, p.run.run_id)
        return [p for p in prepared if p.run.run_id in held]

    def _write_task_file(self, p: _Prepared, env: dict[str, str]) -> None:
        """Fills in the request that starts the attempt, with its task file's content
        (built at the claim, :meth:`_build_early`, or now): the executor writes the file
        (the fork server does, off this process) and makes the attempt's folder. The
        run's folder of task files is made here, once per run."""
        if not p.task_json:
            self._build_task_file(p)
        if p.run.run_id not in self._task_file_runs:
            os.makedirs(os.path.dirname(p.task_path), exist_ok=True)
            self._task_file_runs.add(p.run.run_id)
        p.request = LaunchRequest(
            key=task_key(p.run.run_id, p.row.qualified_name),
            task_file=p.task_path,
            result_file=p.result_file,
            # The launcher's own messages go to the task log too: one file less per task,
            # and a task that ends without a result leaves its output where the scheduler
            # reads the launcher's last words (user code may run in the launcher process).
            launcher_log=p.log_file,
            cwd=str(p.attempt_dir),
            env=env,
            image=p.image,
            task_text=p.task_json,
        )

    def _build_early(self, p: _Prepared) -> None:
        """Builds a claimed attempt's task file at its claim. A failure surfaces at its
        start, where it is built again."""
        try:
            self._build_task_file(p)
        except Exception:
            p.task_json = ""

    def _build_task_file(self, p: _Prepared) -> None:
        """The attempt's task file as JSON, and what its start needs from it."""
        plan = self._plan(p.run)
        task = plan.task(p.row.qualified_name)
        executor = plan.executor(task.component)
        task_file = build_task_file(
            run_id=p.run.run_id,
            pipeline_name=p.run.pipeline_name,
            pipeline_root=p.run.pipeline_root,
            task=task,
            executor=executor,
            inputs=p.row.inputs or {},
            attempt=p.attempt,
            attempt_dir=p.attempt_dir,
            job=job_placeholders(p.run, p.row.name),
            qualified=p.row.qualified_name,
        )
        p.task_path = str(self._task_file(p.run.run_id, p.row.qualified_name, p.attempt))
        p.task_json = task_file.to_json()
        p.result_file = task_file.result_file
        p.log_file = task_file.log_file
        p.image = str(task_file.container.get("image", ""))
        p.timeout = task_timeout(p.run, executor, (plan.spec.get("deploymentSpec") or {}), task.component)

    def _fail_start(self, run: RunRow, row: TaskRow, execution_id: int, err: Exception) -> None:
        log.error("could not start task %s of run %s: %s", row.qualified_name, run.run_id, err, exc_info=err)
        self._record_outputs(run, execution_id, {}, FAILED)
        self._finish_row(run.run_id, row.qualified_name, FAILED, error=f"could not start the task: {err}")
        self.wake(run.run_id)

    def _store_attempts(self, prepared: list[_Prepared]) -> set[str]:
        """Stores attempts of tasks claimed earlier (after a cache miss) and renews the
        lease of their runs (compare-and-set), in one transaction; returns the runs still
        held."""
        stamp = now()
        with self.db.session() as s:
            connection = s.connection()
            held = self.leases.hold_on(connection, (p.run.run_id for p in prepared))
            self._update_claimed(
                connection,
                [
                    {
                        "row_id": p.row.id,
                        "attempt": p.attempt,
                        "task_dir": str(p.attempt_dir),
                        "log_uri": p.log_uri,
                        "fingerprint": p.row.fingerprint,
                        "started_at": stamp,
                        "lookup_execution": True,
                    }
                    for p in prepared
                    if p.run.run_id in held
                ],
            )
        for p in prepared:
            if p.run.run_id in held:
                stored(p.row, fingerprint=p.row.fingerprint, started_at=stamp)
                self._wrote(p.run.run_id, p.row.qualified_name)  # its start time
        return held

    def _update_claimed(self, connection: Connection, values: list[dict[str, Any]]) -> None:
        """Sets columns of task rows (``row_id`` + the same columns in each item) with one
        executemany UPDATE, no ORM unit of work. Only rows this scheduler claimed, that are
        still RUNNING and whose run it still holds are written: a run taken over meanwhile
        keeps what its new owner wrote (which may be this very attempt, re-attached to)."""
        if not values:
            return
        table = TaskRow.__table__
        assert isinstance(table, Table)
        columns = [name for name in values[0] if name != "row_id"]
        statement = (
            update(table)
            .where(
                table.c.id == bindparam("row_id"),
                table.c.worker == self.leases.owner,
                table.c.state == RUNNING,
                exists().where(RunRow.run_id == table.c.run_id, RunRow.lease_owner == self.leases.owner),
            )
            .values({name: bindparam(f"v_{name}") for name in columns})
        )
        connection.execute(statement, [{"row_id": v["row_id"], **{f"v_{n}": v[n] for n in columns}} for v in values])


@dataclass
class _Prepared:
    """A claimed task's next attempt; the fields after ``lookup`` are filled in as it starts."""

    run: RunRow
    row: TaskRow
    attempt: int
    attempt_dir: Path
    log_uri: str
    #: Whether an earlier, lost attempt may have recorded this attempt's execution.
    lookup: bool = False
    image: str = ""
    request: LaunchRequest | None = None
    timeout: float = 0.0
    pid: int = 0
    execution_id: int = 0
    #: When its claim (which renewed its run's lease) was made (``time.monotonic()``).
    claimed_at: float = field(default_factory=time.monotonic)
    #: The lease epoch (``Leases.epoch``) when the task was claimed.
    epoch: int = 0
    #: The task file: its path, its JSON and the result file it names.
    task_path: str = ""
    task_json: str = ""
    result_file: str = ""
    log_file: str = ""


def stored(row: TaskRow, **values: Any) -> None:
    """Sets columns of a detached task row to what a statement has just stored, as its
    committed state: the row stays clean, or becomes clean when these were the changes
    it held (see :meth:`HarvestMixin._end_rows`)."""
    for name, value in values.items():
        set_committed_value(row, name, value)
    state = inspect(row)
    if state.modified and not state.committed_state:
        # No attribute differs from what is stored (a cache lookup had set the
        # fingerprint on the detached row, stored since): nothing is left to flush.
        state.modified = False


def task_file_path(work_dir: Path, run_id: str, qualified: str, attempt: int) -> Path:
    """Where an attempt's task file goes: one flat folder per run, beside the attempt
    folders rather than in them. The engine then creates one file per attempt and no
    folder (a ``mkdir`` costs as much as a file, and each can wait behind other writes to
    the disk); the executor makes the attempt's folder, in the task's process."""
    name = qualified.replace("%", "%25").replace("/", "%2F")
    if len(name.encode()) > 200:  # file names are limited to 255 bytes; qualified names are not
        head = name.encode()[:150].decode(errors="ignore")
        name = f"{head}-{hashlib.sha256(qualified.encode()).hexdigest()[:16]}"
    return work_dir / "runs" / run_id / "task-files" / f"{name}.a{attempt}.json"


def read_json(path: str) -> dict[str, Any] | None:
    """A JSON object read from ``path``; None when the file is missing, unreadable or not
    a whole JSON object (a result record cut short reads as none)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None
