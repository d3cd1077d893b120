"""Harvesting ended task attempts: results, retries with backoff, timeouts, cache entries.

A mixin of :class:`~stepwell_scheduler.engine.driver.Engine`. A failed attempt of a task
with a ``retryPolicy`` goes back to PENDING with ``not_before`` set to the backoff
(``backoffDuration * backoffFactor**(attempt-1)``, capped by ``backoffMaxDuration``); a
successful attempt of a task with a fingerprint becomes a cache entry.

Attempts that ended together are harvested together: one read, one ``FinishExecutions``
call, one transaction. Only the scheduler holding the run's lease records a result, and a *replayed* harvest
(the result of an attempt a killed scheduler may have begun to record) records nothing
twice: artifacts already linked to the execution by OUTPUT events are reused, the
execution update is idempotent, and a cache entry that exists is not added again.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session, defer
from sqlalchemy.orm.attributes import flag_modified

from stepwell.server import Database
from stepwell_scheduler.engine.dag import now
from stepwell_scheduler.engine.failpoints import Failpoints
from stepwell_scheduler.engine.leases import Leases
from stepwell_scheduler.engine.outbox import (
    cache_entry,
    end_executions,
    execution_end,
    may_record_later,
)
from stepwell_scheduler.engine.plan import PipelinePlan
from stepwell_scheduler.engine.processes import _SEP, read_json, task_file_path, task_key
from stepwell_scheduler.engine.recovery import locked_runs
from stepwell_scheduler.executors import Executor, TaskHandle
from stepwell_scheduler.metadata_client import CONTAINER_EXECUTION, MetadataClient
from stepwell_scheduler.models import (
    CANCELED,
    CANCELING,
    FAILED,
    PENDING,
    RUNNING,
    SUCCEEDED,
    RunRow,
    TaskRow,
)

log = logging.getLogger(__name__)


def parse_duration(value: Any) -> float:
    """Seconds of a protobuf Duration in JSON form (``"1.5s"``) or a number."""
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value or "").strip()
    if text.endswith("s"):
        text = text[:-1]
    try:
        return float(text) if text else 0.0
    except ValueError:
        return 0.0


def retry_delay(policy: dict[str, Any], failed_attempt: int) -> float | None:
    """Seconds to wait before retrying after the task's ``failed_attempt``-th failure
    (1-based), or None: no retry."""
    limit = int(policy.get("maxRetryCount") or 0)
    if failed_attempt > limit:
        return None
    base = parse_duration(policy.get("backoffDuration"))
    factor = float(policy.get("backoffFactor") or 2.0)
    cap = parse_duration(policy.get("backoffMaxDuration")) or 3600.0
    return min(base * factor ** (failed_attempt - 1), cap)


class HarvestMixin:
    """Reading task results (part of the engine)."""

    db: Database
    executor: Executor
    work_dir: Path
    metadata: MetadataClient
    _handles: dict[str, TaskHandle]
    _started: dict[str, tuple[RunRow, TaskRow, int]]
    _canceling: set[str]
    _owned: set[str]
    _timed_out: dict[str, str]
    _timers: bool
    _replay: set[str]
    leases: Leases
    failpoint: Failpoints

    if TYPE_CHECKING:

        def _plan(self, run: RunRow) -> PipelinePlan: ...
        def _owned_run(self, s: Session, run_id: str) -> RunRow | None: ...
        def _holds(self, s: Session, run_id: str) -> bool: ...
        def _drop(self, run_id: str) -> None: ...
        def _touch(self, run_id: str, qualified: str) -> None: ...
        def _queue_changed(self) -> None: ...
        def _start_execution(
            self, run: RunRow, row: TaskRow, execution_type: str, attempt: int, image: str, lookup: bool | None = None
        ) -> int: ...

    def _collect(self, keys: list[str]) -> tuple[set[str], list[_RowEnd], list[_Ended], _Known]:
        """Reads the results of ended attempts and records them in the metadata service,
        all in one batch; returns the runs touched, the task rows to end (with
        :meth:`_end_rows`, in the caller's transaction), the attempts to record after
        the starts their ends allow (ended ``unrecorded``; see :mod:`.outbox`) and the
        rows of these attempts as this engine stored them at their start, where they can
        be trusted (for :meth:`_end_rows`).

        One read of the rows and runs, one metadata call for every execution's outputs
        and final state. A failed attempt with a ``retryPolicy`` goes back to the queue
        instead.
        """
        # A notice for a task whose current process still runs came from an earlier
        # process of it (one this engine had let go when another scheduler took its run,
        # before it held the run again): it says nothing about the current attempt.
        stale = {key for key in keys if (h := self._handles.get(key)) is not None and self.executor.poll(h) is None}
        if stale:
            log.info("ignoring exit notices of earlier processes of %s", ", ".join(sorted(stale)))
            keys = [key for key in keys if key not in stale]
        if not keys:
            return set(), [], [], {}
        handles = {key: self._handles.pop(key, None) for key in keys}
        timeouts = {key: self._timed_out.pop(key, "") for key in keys}
        replays = {key for key in keys if key in self._replay}
        self._replay -= replays
        runs: dict[str, RunRow] = {}
        rows: dict[str, TaskRow] = {}
        known: _Known = {}
        by_run: dict[str, list[str]] = {}
        for key in keys:
            run_id, _, qualified = key.partition(_SEP)
            started = self._started.pop(key, None)
            if (
                started is not None
                and key not in replays
                and run_id in self._owned
                and run_id not in self._canceling
                and self.leases.unbroken(started[2])
            ):
                # Started by this engine, held without a lapse and not canceled since: its
                # rows are as stored then (only this engine writes a running attempt of a
                # run it holds; ending the rows re-checks the lease). After a lapse (this
                # process stalled) another scheduler may have taken the run over and
                # recorded the attempt under an execution of its own: read it back.
                runs.setdefault(run_id, started[0])
                rows[key] = known[(run_id, qualified)] = started[1]
            else:
                by_run.setdefault(run_id, []).append(qualified)
        if by_run:
            with self.db.session() as s:
                runs.update({r.run_id: r for r in s.scalars(select(RunRow).where(RunRow.run_id.in_(list(by_run))))})
                for read in _task_rows(s, by_run):
                    rows[task_key(read.run_id, read.qualified_name)] = read
                    if not read.execution_id and read.lookup_execution:
                        _ = read.inputs  # loaded now: recording its execution below needs them
        touched: set[str] = set()
        ended: list[_Ended] = []
        for key in keys:
            run_id = key.partition(_SEP)[0]
            run, row = runs.get(run_id), rows.get(key)
            if run is not None and run.lease_owner != self.leases.owner:
                self._drop(run_id)
                continue
            touched.add(run_id)
            if row is None or run is None or row.state != RUNNING or not row.task_dir:
                continue
            outcome = self._outcome(run, row, handles.get(key), timeouts.get(key, ""))
            outcome.replay = key in replays
            if not row.execution_id and row.lookup_execution:
                # Started, but stopped before its execution's id was stored: find it (or
                # record it now) so that it is ended like any other.
                outcome.found_execution = self._start_execution(run, row, CONTAINER_EXECUTION, row.attempt, "", lookup=True)
                row.execution_id = outcome.found_execution
            ended.append(outcome)
        for e in ended:
            e.later = bool(e.row.execution_id) and may_record_later(e.state, e.outputs, e.replay)
        self._record_all([(e.run, e.row.execution_id, e.outputs, e.state) for e in ended if e.row.execution_id and not e.later])
        finished: list[_Ended] = []
        for e in ended:
            if e.state == FAILED and e.run.state != CANCELING and self._schedule_retry(
                e.run, e.row, e.error, e.log_tail, e.log_uri
            ):
                continue
            if e.state == SUCCEEDED and e.row.fingerprint and e.row.execution_id and not e.later:
                self._put_cache_entry(e.run, e.row, e.outputs, replay=e.replay)
            finished.append(e)
        if finished:
            self.failpoint("outputs-recorded", len(finished))
        return touched, [
            (
                e.run.run_id,
                e.row.qualified_name,
                e.state,
                {
                    "error": e.error,
                    "outputs": e.outputs,
                    "log_tail": e.log_tail,
                    "log_uri": e.log_uri,
                    **({"execution_id": e.found_execution, "lookup_execution": False} if e.found_execution else {}),
                    **({"unrecorded": True} if e.later else {}),
                },
            )
            for e in finished
        ], [e for e in finished if e.later], known

    def _outcome(self, run: RunRow, row: TaskRow, handle: TaskHandle | None, timeout_error: str) -> _Ended:
        """What an ended attempt left: its result file, or the launcher's exit and log."""
        result = read_json(os.path.join(row.task_dir, "result.json"))
        if result is None:
            code = handle.exit_code if handle else None
            tail = self.executor.logs(handle) if handle else ""
            why = self.executor.start_error(str(task_file_path(self.work_dir, run.run_id, row.qualified_name, row.attempt)))
            if why:
                error = f"could not start the task: {why}"
            else:
                # The user code may have ended it (it can run in the launcher's process).
                error = f"the task process ended (exit status {code}) without reporting a result (see the end of its log)"
            state, outputs, log_tail, log_uri = FAILED, {}, "\n".join(tail.splitlines()[-30:]), row.log_uri
        else:
            state = SUCCEEDED if result.get("status") == SUCCEEDED else FAILED
            error = str(result.get("error") or "")
            outputs = {"parameters": result.get("parameters") or {}, "artifacts": result.get("artifacts") or {}}
            log_tail = str(result.get("log_tail") or "")
            log_uri = str(result.get("log_uri") or "")
        if timeout_error and state != SUCCEEDED:
            error = timeout_error
        if run.state == CANCELING and state != SUCCEEDED:
            state, error = CANCELED, "canceled"
        return _Ended(run, row, state, error, outputs, log_tail, log_uri)

    def _schedule_retry(self, run: RunRow, row: TaskRow, error: str, log_tail: str, log_uri: str) -> bool:
        policy = self._plan(run).task(row.qualified_name).spec.get("retryPolicy") or {}
        # Failures, not attempts: an attempt lost when a scheduler died is not one.
        failures = (row.failures or 0) + 1
        delay = retry_delay(policy, failures) if policy else None
        if delay is None:
            return False
        log.info(
            "task %s of run %s failed (attempt %d, failure %d); retrying in %.1fs",
            row.qualified_name, run.run_id, row.attempt, failures, delay,
        )
        with self.db.session() as s:
            fresh = s.get(TaskRow, row.id) if self._owned_run(s, run.run_id) is not None else None
            if fresh is not None and fresh.state == RUNNING:
                fresh.state, fresh.pid, fresh.deadline_at = PENDING, 0, None
                fresh.failures = failures
                fresh.not_before = now() + timedelta(seconds=delay)
                fresh.error = f"attempt {row.attempt} failed: {error}; retrying"
                fresh.log_tail, fresh.log_uri = log_tail, log_uri or fresh.log_uri
                self._touch(run.run_id, row.qualified_name)
        self._timers = True
        self._queue_changed()
        return True

    def _put_cache_entry(self, run: RunRow, row: TaskRow, outputs: dict[str, Any], replay: bool = False) -> None:
        try:
            if replay:
                entry = self.metadata.lookup_cache(run.pipeline_name, run.namespace, row.fingerprint)
                if entry is not None and entry["execution_id"] == row.execution_id:
                    return
            self.metadata.put_cache_entry(**cache_entry(run, row, outputs))
        except Exception as err:
            log.warning("could not store the cache entry of task %s: %s", row.qualified_name, err)

    def _record_outputs(self, run: RunRow, execution_id: int, outputs: dict[str, Any], state: str) -> None:
        """Records one execution's produced artifacts (filling in their ids) and its final
        state. Idempotent, so a replayed harvest records nothing twice."""
        if execution_id:
            self._record_all([(run, execution_id, outputs, state)])

    def _record_all(self, items: list[tuple[RunRow, int, dict[str, Any], str]]) -> None:
        """Ends executions in the metadata service in one call: produced artifacts of the
        successful ones (their ids are written into ``outputs``), final states, output
        parameters. A failure is logged and never fails a task."""
        ends = [execution_end(run, execution_id, outputs, state) for run, execution_id, outputs, state in items]
        for (_run, _execution_id, outputs, state), ids in zip(items, end_executions(self.metadata, ends), strict=False):
            if state != SUCCEEDED:
                continue
            for name, records in (outputs.get("artifacts") or {}).items():
                for record, artifact_id in zip(records, ids.get(name, []), strict=False):
                    record["artifact_id"] = artifact_id

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
        fields: dict[str, Any] | None = None,
    ) -> None:
        """Ends a task row (when this scheduler still holds the run); ``fields`` are other
        columns to set in the same transaction."""
        values = {"error": error, "outputs": outputs, "log_tail": log_tail, "log_uri": log_uri, **(fields or {})}
        self._finish_rows([(run_id, qualified, state, values)])

    def _finish_rows(self, items: list[_RowEnd]) -> None:
        """Ends task rows in a transaction of their own (see :meth:`_end_rows`)."""
        if not items:
            return
        with self.db.session() as s:
            self._end_rows(s, items)

    def _end_rows(self, s: Session, items: list[_RowEnd], known: _Known | None = None) -> None:
        """Ends task rows ``(run_id, qualified, state, values)`` in the transaction ``s``,
        each only while this scheduler holds its run (checked under the run's row lock).
        ``values``: ``error``, ``outputs``, ``log_tail``, ``log_uri`` and other columns.

        The rows of a run that are all in ``known`` (as :meth:`_collect` trusts them: as
        this engine stored them, and clean) are not read back: only the run is locked
        and read, and copies of them join the transaction. The columns written here are
        written whatever the copy says they were."""
        if not items:
            return
        by_run: dict[str, list[str]] = {}
        for run_id, qualified, _state, _values in items:
            by_run.setdefault(run_id, []).append(qualified)
        stamp = now()
        rows: dict[tuple[str, str], TaskRow] = {}
        merged: set[int] = set()
        for run_id in sorted(by_run):
            names = by_run[run_id]
            cached = [(known or {}).get((run_id, name)) for name in names]
            if all(row is not None and _clean(row) for row in cached):
                if self._owned_run(s, run_id) is None:
                    continue  # another scheduler holds it (dropped)
                for row in cached:
                    assert row is not None
                    copy = s.merge(row, load=False)
                    rows[(run_id, copy.qualified_name)] = copy
                    merged.add(id(copy))
                continue
            for read in self._lock_and_read(s, run_id, names):
                rows[(run_id, read.qualified_name)] = read
        read_rows(s).update(rows)
        for run_id, qualified, state, values in items:
            row = rows.get((run_id, qualified))
            if row is None or row.state != RUNNING:
                continue  # ended or queued again meanwhile (a harvest may use rows read earlier)
            extra = dict(values)
            error = str(extra.pop("error", "") or "")
            outputs = extra.pop("outputs", None)
            log_tail = str(extra.pop("log_tail", "") or "")
            log_uri = str(extra.pop("log_uri", "") or "")
            for name, value in extra.items():
                setattr(row, name, value)
            row.state, row.error, row.finished_at = state, error, stamp
            row.outputs = outputs or {}
            row.log_tail = log_tail
            row.deadline_at = None
            if log_uri:
                row.log_uri = log_uri
            if id(row) in merged:
                for name in (*extra, "state", "error", "finished_at", "outputs", "log_tail", "deadline_at", "log_uri"):
                    flag_modified(row, name)
            self._touch(run_id, qualified)

    def _lock_and_read(self, s: Session, run_id: str, names: list[str]) -> list[TaskRow]:
        """The task rows ``names`` of a run this scheduler holds, whole (the run's view
        takes them as they are: no read-back), with the run row locked and read in the
        same statement (advancing the run, next in the transaction, needs it); none when
        another scheduler holds the run. See :meth:`RecoveryMixin._owned_run`.

        On Postgres a wait for the run's lock returns the run row as it is after the wait
        but the task rows as they were when the statement began. That is enough because
        nobody changes a running attempt's row of a run this scheduler holds while holding
        the run's lock (RetryRun and CancelRun leave running rows alone); a writer that
        did would need the rows locked here too (``of=[RunRow, TaskRow]``)."""
        locked = locked_runs(s)
        if run_id in locked:
            return _task_rows(s, {run_id: names}, whole=True) if locked[run_id] is not None else []
        found: list[TaskRow] = []
        run: RunRow | None = None
        query = (
            select(TaskRow, RunRow)
            .join(RunRow, RunRow.run_id == TaskRow.run_id)
            .where(TaskRow.run_id == run_id, TaskRow.qualified_name.in_(names[:500]))
            .with_for_update(of=RunRow)
        )
        for row, joined in s.execute(query):
            found.append(row)
            run = joined
        if run is None:  # none of the rows exists: lock the run on its own
            return _task_rows(s, {run_id: names}, whole=True) if self._owned_run(s, run_id) is not None else []
        if run.lease_owner != self.leases.owner:
            self._drop(run_id)
            locked[run_id] = None
            return []
        locked[run_id] = run
        if len(names) > 500:
            found += _task_rows(s, {run_id: names[500:]}, whole=True)
        return found


#: A task row to end: ``(run_id, qualified name, state, column values)``.
_RowEnd = tuple[str, str, str, dict[str, Any]]
#: Task rows as this engine stored them, by run and qualified name.
_Known = dict[tuple[str, str], TaskRow]


def _clean(row: TaskRow) -> bool:
    """Whether a row kept in memory holds no change a transaction has not stored."""
    state = inspect(row)
    return bool(state.detached and not state.modified and not state.expired_attributes)


@dataclass
class _Ended:
    """An ended attempt, read but not recorded yet."""

    run: RunRow
    row: TaskRow
    state: str
    error: str
    outputs: dict[str, Any]
    log_tail: str
    log_uri: str
    replay: bool = False
    #: The execution found (or recorded) for an attempt whose execution id was not stored.
    found_execution: int = 0
    #: Recorded in the metadata service after the starts its end allows (:mod:`.outbox`).
    later: bool = False


def _task_rows(s: Session, names_by_run: dict[str, list[str]], whole: bool = False) -> list[TaskRow]:
    """The task rows named per run, read in chunks that keep ``IN`` lists short; unless
    ``whole``, without their JSON inputs and outputs (a harvest only writes outputs)."""
    found: list[TaskRow] = []
    for run_id, names in names_by_run.items():
        for i in range(0, len(names), 500):
            query = select(TaskRow).where(TaskRow.run_id == run_id, TaskRow.qualified_name.in_(names[i : i + 500]))
            if not whole:
                query = query.options(defer(TaskRow.inputs), defer(TaskRow.outputs))
            found.extend(s.scalars(query))
    return found


def read_rows(s: Session) -> dict[tuple[str, str], TaskRow]:
    """Whole task rows the transaction ``s`` has read (and may have changed since), by run
    and qualified name: a run's view takes these rather than reading them again."""
    found: dict[tuple[str, str], TaskRow] = s.info.setdefault("stepwell.read_rows", {})
    return found


def new_rows(s: Session) -> list[TaskRow]:
    """Task rows the transaction ``s`` created, in the order they were created: a claim
    in the same transaction takes the queued ones as they are inserted."""
    found: list[TaskRow] = s.info.setdefault("stepwell.new_rows", [])
    return found
