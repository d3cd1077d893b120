"""Advancing one run's DAGs: which tasks became ready, which DAGs (and the run) ended.

Pure bookkeeping over task rows, run inside one database transaction by the engine;
it never calls another service. New rows are added to the session by the caller-given
``add`` function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from stepwell_scheduler.engine.plan import CONTAINER, DAG, PipelinePlan, PlannedTask, qualify
from stepwell_scheduler.engine.resolve import (
    InputResolutionError,
    resolve_dag_outputs,
    resolve_inputs,
)
from stepwell_scheduler.models import (
    CANCELED,
    CANCELING,
    FAILED,
    FINAL_STATES,
    PENDING,
    RUNNING,
    SKIPPED,
    SUCCEEDED,
    RunRow,
    TaskRow,
)

_OK = frozenset({SUCCEEDED, SKIPPED})


def now() -> datetime:
    """The current time in UTC."""
    return datetime.now(timezone.utc)


def job_placeholders(run: RunRow, task_name: str) -> dict[str, str]:
    """Values of the ``{{$.pipeline_*}}`` placeholders for a task of ``run``."""
    created = run.created_at.replace(tzinfo=run.created_at.tzinfo or timezone.utc).isoformat()
    return {
        "pipeline_job_name": run.run_id,
        "pipeline_job_resource_name": f"runs/{run.run_id}",
        "pipeline_job_uuid": run.run_id,
        "pipeline_task_name": task_name,
        "pipeline_task_uuid": f"{run.run_id}/{task_name}",
        "pipeline_root": run.pipeline_root,
        "pipeline_job_create_time_utc": created,
        "pipeline_job_schedule_time_utc": created,
    }


def final_status(row: TaskRow, run_id: str) -> dict[str, Any]:
    """The ``PipelineTaskFinalStatus`` value of a finished task."""
    return {
        "state": row.state,
        "pipelineTaskName": row.name,
        "pipelineJobResourceName": f"runs/{run_id}",
        "error": {"code": 0 if row.state == SUCCEEDED else 2, "message": row.error or ""},
    }


@dataclass
class DagAdvancer:
    """Advances the DAG scopes of one run over its loaded task rows."""

    run: RunRow
    plan: PipelinePlan
    rows: dict[str, TaskRow]
    add: Callable[[TaskRow], None]
    changed: bool = False
    started: list[str] = field(default_factory=list)

    @property
    def canceling(self) -> bool:
        return self.run.state == CANCELING

    def lookup_in(self, scope: str) -> Callable[[str], dict[str, Any] | None]:
        def lookup(name: str) -> dict[str, Any] | None:
            row = self.rows.get(qualify(scope, name))
            if row is None or row.state not in FINAL_STATES:
                return None
            return {**(row.outputs or {}), "final_status": final_status(row, self.run.run_id)}

        return lookup

    def scope_inputs(self, scope: str) -> dict[str, Any]:
        if not scope:
            return {"parameters": dict(self.run.parameters or {}), "artifacts": {}}
        return dict(self.rows[scope].inputs or {})

    def advance(self) -> str | None:
        """Creates rows for ready tasks, settles finished DAGs; returns the run's final state or None."""
        self._advance_scope("")
        state, error = self.settle("")
        if state is None:
            return None
        self.run.state = state
        self.run.error = error
        self.run.finished_at = now()
        if state == SUCCEEDED:
            self.run.outputs = resolve_dag_outputs(self.plan.scope_component("").get("dag") or {}, self.lookup_in(""))
        self.changed = True
        return state

    def _advance_scope(self, scope: str) -> None:
        progress = True
        while progress:
            progress = False
            for child in self.plan.children(scope):
                row = self.rows.get(child.qualified)
                if row is None:
                    if not self.canceling and self._readiness(scope, child) == "ready":
                        self._create(scope, child)
                        progress = True
                elif row.kind == DAG and row.state == RUNNING:
                    self._advance_scope(child.qualified)
                    state, error = self.settle(child.qualified)
                    if state is not None:
                        self._finish_dag(row, state, error)
                        progress = True

    def _readiness(self, scope: str, child: PlannedTask) -> str:
        """"ready", "waiting" or "blocked" (an upstream task did not succeed)."""
        strategy = (child.spec.get("triggerPolicy") or {}).get("strategy", "")
        need_success = strategy != "ALL_UPSTREAM_TASKS_COMPLETED"
        waiting = False
        for dep in child.dependencies():
            row = self.rows.get(qualify(scope, dep))
            if row is None:
                if self._blocked(scope, dep, set()):
                    if need_success:
                        return "blocked"
                    continue
                waiting = True
            elif row.state not in FINAL_STATES:
                waiting = True
            elif need_success and row.state not in _OK:
                return "blocked"
        return "waiting" if waiting else "ready"

    def _blocked(self, scope: str, name: str, seen: set[str]) -> bool:
        """True when task ``name`` (without a row) can never run because an upstream task failed."""
        if name in seen:
            return False
        seen.add(name)
        child = next((c for c in self.plan.children(scope) if c.name == name), None)
        if child is None:
            return False
        strategy = (child.spec.get("triggerPolicy") or {}).get("strategy", "")
        if strategy == "ALL_UPSTREAM_TASKS_COMPLETED":
            return False
        for dep in child.dependencies():
            row = self.rows.get(qualify(scope, dep))
            if row is None:
                if self._blocked(scope, dep, seen):
                    return True
            elif row.state in FINAL_STATES and row.state not in _OK:
                return True
        return False

    def _create(self, scope: str, child: PlannedTask) -> None:
        stamp = now()
        row = TaskRow(
            run_id=self.run.run_id,
            qualified_name=child.qualified,
            name=child.name,
            display_name=child.display_name,
            parent=scope,
            kind=child.kind,
            component=child.component_name,
            state=PENDING,
            inputs={},
            outputs={},
            execution_id=0,
            attempt=0,
            pid=0,
            task_dir="",
            ready_at=stamp,
            error="",
            log_tail="",
            log_uri="",
        )
        try:
            unsupported = _unsupported(child)
            if unsupported:
                raise InputResolutionError(unsupported)
            row.inputs = resolve_inputs(
                child.spec,
                child.component,
                self.scope_inputs(scope),
                self.lookup_in(scope),
                job_placeholders(self.run, child.name),
            )
        except InputResolutionError as err:
            row.state, row.error, row.finished_at = FAILED, f"task {child.qualified!r}: {err}", stamp
        else:
            if child.kind == DAG:
                row.state, row.started_at = RUNNING, stamp
        self.rows[child.qualified] = row
        self.add(row)
        self.changed = True
        if row.state == PENDING and child.kind != DAG:
            self.started.append(child.qualified)

    def settle(self, scope: str) -> tuple[str | None, str]:
        """The final state of DAG ``scope`` when all its tasks are done (else None) and an error text."""
        failed: list[TaskRow] = []
        canceled = False
        for child in self.plan.children(scope):
            row = self.rows.get(child.qualified)
            if row is None:
                if self.canceling:
                    canceled = True
                    continue
                if self._readiness(scope, child) == "blocked":
                    continue
                return None, ""
            if row.state not in FINAL_STATES:
                return None, ""
            if row.state == FAILED:
                failed.append(row)
            elif row.state == CANCELED:
                canceled = True
        if failed:
            first = min(failed, key=lambda r: (r.finished_at or now(), r.id or 0))
            reason = first.error or "it failed"
            return FAILED, f"task {first.qualified_name!r} failed: {reason}" if not reason.startswith("task ") else reason
        if canceled or self.canceling:
            return CANCELED, "the run was canceled"
        return SUCCEEDED, ""

    def _finish_dag(self, row: TaskRow, state: str, error: str) -> None:
        row.state, row.error, row.finished_at = state, error, now()
        if state == SUCCEEDED:
            dag = self.plan.task(row.qualified_name).component.get("dag") or {}
            row.outputs = resolve_dag_outputs(dag, self.lookup_in(row.qualified_name))
        self.changed = True


def _unsupported(child: PlannedTask) -> str:
    spec = child.spec
    if "parameterIterator" in spec or "artifactIterator" in spec:
        return "loops (ParallelFor) are not supported yet"
    if (spec.get("triggerPolicy") or {}).get("condition"):
        return "conditions (dsl.If) are not supported yet"
    if child.kind not in (CONTAINER, DAG) and child.kind != "importer":
        return f"unsupported task kind {child.kind!r}"
    return ""
