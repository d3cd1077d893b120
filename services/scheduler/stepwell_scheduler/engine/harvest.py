"""Harvesting ended task attempts: results, retries with backoff, timeouts, cache entries.

A mixin of :class:`~stepwell_scheduler.engine.driver.Engine`. A failed attempt of a task
with a ``retryPolicy`` goes back to PENDING with ``not_before`` set to the backoff
(``backoffDuration * backoffFactor**(attempt-1)``, capped by ``backoffMaxDuration``); a
successful attempt of a task with a fingerprint becomes a cache entry.

Only the scheduler holding the run's lease records a result, and a *replayed* harvest
(the result of an attempt a killed scheduler may have begun to record) records nothing
twice: artifacts already linked to the execution by OUTPUT events are reused, the
execution update is idempotent, and a cache entry that exists is not added again.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from stepwell.server import Database
from stepwell_scheduler.engine.dag import now
from stepwell_scheduler.engine.failpoints import Failpoints
from stepwell_scheduler.engine.launch import _SEP
from stepwell_scheduler.engine.leases import Leases
from stepwell_scheduler.engine.plan import PipelinePlan
from stepwell_scheduler.executors import Executor, TaskHandle
from stepwell_scheduler.metadata_client import MetadataClient
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
    """Seconds to wait before retrying after ``failed_attempt`` (1-based), or None: no retry."""
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
    metadata: MetadataClient
    _handles: dict[str, TaskHandle]
    _timed_out: dict[str, str]
    _timers: bool
    _replay: set[str]
    leases: Leases
    failpoint: Failpoints

    if TYPE_CHECKING:

        def _plan(self, run: RunRow) -> PipelinePlan: ...
        def _owned_run(self, s: Session, run_id: str) -> RunRow | None: ...
        def _drop(self, run_id: str) -> None: ...
        def _touch(self, run_id: str, qualified: str) -> None: ...

    def _harvest(self, key: str) -> str | None:
        run_id, _, qualified = key.partition(_SEP)
        handle = self._handles.pop(key, None)
        timeout_error = self._timed_out.pop(key, "")
        replay = key in self._replay
        self._replay.discard(key)
        with self.db.session() as s:
            row = s.scalar(select(TaskRow).where(TaskRow.run_id == run_id, TaskRow.qualified_name == qualified))
            run = s.get(RunRow, run_id)
        if run is not None and run.lease_owner != self.leases.owner:
            self._drop(run_id)
            return None
        if row is None or run is None or row.state != RUNNING or not row.task_dir:
            return run_id
        result = _read_json(os.path.join(row.task_dir, "result.json"))
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
        if timeout_error and state != SUCCEEDED:
            error = timeout_error
        if run.state == CANCELING and state != SUCCEEDED:
            state, error = CANCELED, "canceled"
        if row.execution_id:
            self._record_outputs(run, row.execution_id, outputs, state, replay=replay)
        if state == FAILED and run.state != CANCELING and self._schedule_retry(run, row, error, log_tail, log_uri):
            return run_id
        if state == SUCCEEDED and row.fingerprint and row.execution_id:
            self._put_cache_entry(run, row, outputs, replay=replay)
        self.failpoint("outputs-recorded")
        self._finish_row(run_id, qualified, state, error=error, outputs=outputs, log_tail=log_tail, log_uri=log_uri)
        self.failpoint("task-finished")
        return run_id

    def _schedule_retry(self, run: RunRow, row: TaskRow, error: str, log_tail: str, log_uri: str) -> bool:
        policy = self._plan(run).task(row.qualified_name).spec.get("retryPolicy") or {}
        delay = retry_delay(policy, row.attempt) if policy else None
        if delay is None:
            return False
        log.info("task %s of run %s failed (attempt %d); retrying in %.1fs", row.qualified_name, run.run_id, row.attempt, delay)
        with self.db.session() as s:
            fresh = s.get(TaskRow, row.id) if self._owned_run(s, run.run_id) is not None else None
            if fresh is not None and fresh.state == RUNNING:
                fresh.state, fresh.pid, fresh.deadline_at = PENDING, 0, None
                fresh.not_before = now() + timedelta(seconds=delay)
                fresh.error = f"attempt {row.attempt} failed: {error}; retrying"
                fresh.log_tail, fresh.log_uri = log_tail, log_uri or fresh.log_uri
                self._touch(run.run_id, row.qualified_name)
        self._timers = True
        return True

    def _put_cache_entry(self, run: RunRow, row: TaskRow, outputs: dict[str, Any], replay: bool = False) -> None:
        try:
            if replay:
                entry = self.metadata.lookup_cache(run.pipeline_name, run.namespace, row.fingerprint)
                if entry is not None and entry["execution_id"] == row.execution_id:
                    return
            self.metadata.put_cache_entry(
                pipeline_name=run.pipeline_name,
                namespace=run.namespace,
                fingerprint=row.fingerprint,
                run_id=run.run_id,
                task_name=row.qualified_name,
                execution_id=row.execution_id,
                outputs=outputs,
            )
        except Exception as err:
            log.warning("could not store the cache entry of task %s: %s", row.qualified_name, err)

    def _record_outputs(
        self, run: RunRow, execution_id: int, outputs: dict[str, Any], state: str, replay: bool = False
    ) -> None:
        """Records produced artifacts (filling in their ids) and the execution's final state.

        ``replay``: the artifacts may have been recorded already (by a killed scheduler);
        when the execution has OUTPUT events, their artifacts are used instead.
        """
        if not execution_id:
            return
        try:
            artifacts = outputs.get("artifacts") or {}
            if state == SUCCEEDED and artifacts:
                ids = self.metadata.recorded_outputs(execution_id) if replay else {}
                if not ids:
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
        fields: dict[str, Any] | None = None,
    ) -> None:
        """Ends a task row (when this scheduler still holds the run); ``fields`` are other
        columns to set in the same transaction."""
        with self.db.session() as s:
            if self._owned_run(s, run_id) is None:
                return
            row = s.scalar(select(TaskRow).where(TaskRow.run_id == run_id, TaskRow.qualified_name == qualified))
            if row is None:
                return
            for name, value in (fields or {}).items():
                setattr(row, name, value)
            row.state, row.error, row.finished_at = state, error, now()
            row.outputs = outputs or {}
            row.log_tail = log_tail
            row.deadline_at = None
            if log_uri:
                row.log_uri = log_uri
            self._touch(run_id, qualified)


def _read_json(path: str) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None
