"""Advancing one run's DAGs: which tasks became ready, which DAGs (and the run) ended.

Pure bookkeeping over task rows, run inside one database transaction by the engine;
it never calls another service. New rows are added to the session by the caller-given
``add`` function.

Control flow (kfp-facts §2.5, §4.6): a task whose ``triggerPolicy.condition`` is false
ends SKIPPED without running (a skipped DAG runs none of its tasks); a ParallelFor task
is a ``loop`` row whose iterations are DAG rows ``<loop>[i]``, created in order and at
most ``parallelismLimit`` at a time; its outputs are the iterations' outputs collected
in iteration order. While a run is canceling, only tasks that wait for upstream
*completion* (exit handlers) are still started.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from stepwell.ir.cel import CelError, evaluate_condition
from stepwell_scheduler.engine.loops import LoopProgress, collect_iterations, loop_items
from stepwell_scheduler.engine.plan import (
    CONTAINER,
    DAG,
    IMPORTER,
    LOOP,
    PipelinePlan,
    PlannedTask,
    iteration_name,
    qualify,
)
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
COMPLETED = "ALL_UPSTREAM_TASKS_COMPLETED"


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
    #: The run's rows by qualified name; rows may be detached (from an earlier step's
    #: session): every row the advancer changes or creates is passed to ``add``.
    rows: dict[str, TaskRow]
    add: Callable[[TaskRow], None]
    #: The DAG and loop tasks whose scope may have changed since the previous advance
    #: (they hold a row that changed); None: every scope. Others are not walked.
    dirty: set[str] | None = None
    #: Per running loop (by qualified name): its iterations' progress as the previous
    #: advance left it, so that a step looks only at the iterations that changed. Kept by
    #: the caller with the rows; ignored (and rebuilt) when every scope is walked.
    loops: dict[str, LoopProgress] = field(default_factory=dict)
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
        inputs = self.rows[scope].inputs or {}
        return {"parameters": inputs.get("parameters") or {}, "artifacts": inputs.get("artifacts") or {}}

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
                qualified = qualify(scope, child.name)
                row = self.rows.get(qualified)
                if row is None:
                    if self._may_start(scope, child):
                        progress |= self._create(scope, child)
                elif row.state != RUNNING or not self._may_change(qualified):
                    continue
                elif row.kind == DAG:
                    progress |= self._advance_dag(row)
                elif row.kind == LOOP:
                    progress |= self._advance_loop(row, child)

    def _may_change(self, scope: str) -> bool:
        return self.dirty is None or scope in self.dirty

    def _may_start(self, scope: str, child: PlannedTask) -> bool:
        if self._readiness(scope, child) != "ready":
            return False
        return not self.canceling or _strategy(child) == COMPLETED

    def _advance_dag(self, row: TaskRow) -> bool:
        """Advances a running DAG row's scope; True when the DAG ended."""
        self._advance_scope(row.qualified_name)
        state, error = self.settle(row.qualified_name)
        if state is None:
            return False
        self._finish_dag(row, state, error)
        return True

    def _advance_loop(self, row: TaskRow, task: PlannedTask) -> bool:
        """Creates and advances a loop's iterations; True when the loop ended."""
        progress = None if self.dirty is None or self.canceling else self.loops.get(row.qualified_name)
        if progress is None:
            return self._advance_loop_whole(row, task)
        return self._advance_loop_changed(row, task, progress)

    def _advance_loop_changed(self, row: TaskRow, task: PlannedTask, progress: LoopProgress) -> bool:
        """:meth:`_advance_loop` looking only at the iterations written since the previous
        advance, and creating the next ones (iterations are created in index order, so
        the missing ones are the last)."""
        loop = row.qualified_name
        items = (row.inputs or {}).get("items") or []
        limit = int((task.spec.get("iteratorPolicy") or {}).get("parallelismLimit") or 0)
        for index in self._changed_iterations(loop):
            it = self.rows.get(iteration_name(loop, index))
            if it is None:  # gone: not a state this path knows
                self.loops.pop(loop, None)
                return self._advance_loop_whole(row, task)
            if it.state == RUNNING:
                self._advance_dag(it)
            progress.note(index, it.state)
        while progress.missing and not progress.failed and not (limit and len(progress.unfinished) >= limit):
            index = progress.missing.popleft()
            it = self._create_iteration(row, task, index, items[index])
            if it.state == RUNNING:
                self._advance_dag(it)
            progress.note(index, it.state)
        if progress.unfinished or (progress.missing and not progress.failed):
            return False
        self.loops.pop(loop, None)
        return self._advance_loop_whole(row, task)  # ends the loop: looks at every iteration once

    def _changed_iterations(self, loop: str) -> list[int]:
        prefix = loop + "["
        found = []
        for name in self.dirty or ():
            if name.startswith(prefix) and name.endswith("]") and name[len(prefix) : -1].isdigit():
                found.append(int(name[len(prefix) : -1]))
        return sorted(found)

    def _advance_loop_whole(self, row: TaskRow, task: PlannedTask) -> bool:
        """:meth:`_advance_loop` looking at every iteration."""
        items = list((row.inputs or {}).get("items") or [])
        limit = int((task.spec.get("iteratorPolicy") or {}).get("parallelismLimit") or 0)
        iterations: list[TaskRow | None] = [self.rows.get(iteration_name(row.qualified_name, i)) for i in range(len(items))]
        active = sum(1 for it in iterations if it is not None and it.state not in FINAL_STATES)
        stop = self.canceling or any(it is not None and it.state == FAILED for it in iterations)
        for i, it in enumerate(iterations):
            if it is None:
                if stop or (limit and active >= limit):
                    continue
                it = iterations[i] = self._create_iteration(row, task, i, items[i])
                active += 1
            if it.state == RUNNING and self._may_change(it.qualified_name) and self._advance_dag(it):
                active -= 1
                stop = stop or it.state == FAILED
        if any(it is not None and it.state not in FINAL_STATES for it in iterations) or (
            not stop and any(it is None for it in iterations)
        ):
            self.loops[row.qualified_name] = LoopProgress.of(iterations)
            return False
        self.loops.pop(row.qualified_name, None)
        done = [it for it in iterations if it is not None]
        failed = [it for it in done if it.state == FAILED]
        if failed:
            self._end(row, FAILED, failed[0].error or f"iteration {failed[0].qualified_name!r} failed")
        elif self.canceling or len(done) < len(iterations) or any(it.state == CANCELED for it in done):
            self._end(row, CANCELED, "the run was canceled")
        else:
            self._end(row, SUCCEEDED, "")
            row.outputs = collect_iterations(task.component.get("dag") or {}, done)
        return True

    def _create_iteration(self, loop: TaskRow, task: PlannedTask, index: int, item: Any) -> TaskRow:
        item_input = str((task.spec.get("parameterIterator") or {}).get("itemInput") or "")
        inputs = loop.inputs or {}
        parameters = {**(inputs.get("parameters") or {}), item_input: item}
        row = self._new_row(
            qualified=iteration_name(loop.qualified_name, index),
            name=f"{loop.name}[{index}]",
            display_name=f"{loop.display_name or loop.name}[{index}]",
            parent=loop.qualified_name,
            kind=DAG,
            component=loop.component,
        )
        row.inputs = {"parameters": parameters, "artifacts": inputs.get("artifacts") or {}}
        row.state, row.started_at = RUNNING, row.ready_at
        self._store(row)
        return row

    def _readiness(self, scope: str, child: PlannedTask) -> str:
        """"ready", "waiting" or "blocked" (an upstream task did not succeed)."""
        need_success = _strategy(child) != COMPLETED
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
        if child is None or _strategy(child) == COMPLETED:
            return False
        for dep in child.dependencies():
            row = self.rows.get(qualify(scope, dep))
            if row is None:
                if self._blocked(scope, dep, seen):
                    return True
            elif row.state in FINAL_STATES and row.state not in _OK:
                return True
        return False

    def _new_row(self, *, qualified: str, name: str, display_name: str, parent: str, kind: str, component: str) -> TaskRow:
        return TaskRow(
            run_id=self.run.run_id,
            qualified_name=qualified,
            name=name,
            display_name=display_name,
            parent=parent,
            kind=kind,
            component=component,
            state=PENDING,
            inputs={},
            outputs={},
            execution_id=0,
            attempt=0,
            pid=0,
            task_dir="",
            ready_at=now(),
            error="",
            log_tail="",
            log_uri="",
            fingerprint="",
            cached=False,
            worker="",
            lookup_execution=False,
            failures=0,
            unrecorded=False,
        )

    def _store(self, row: TaskRow) -> None:
        self.rows[row.qualified_name] = row
        if self.dirty is not None:
            self.dirty.add(row.qualified_name)  # a new DAG or loop is walked in this advance
        self.add(row)
        self.changed = True

    def _create(self, scope: str, child: PlannedTask) -> bool:
        """Creates the row of a ready task; True when it may change what else is ready
        (it ended at once, or is a DAG or loop to walk), False for a task queued to run:
        its siblings wait for its end, so no second look at them is needed."""
        qualified = qualify(scope, child.name)
        row = self._new_row(
            qualified=qualified,
            name=child.name,
            display_name=child.display_name,
            parent=scope,
            kind=child.kind,
            component=child.component_name,
        )
        stamp = row.ready_at
        try:
            unsupported = _unsupported(child)
            if unsupported:
                raise InputResolutionError(unsupported)
            row.inputs = resolve_inputs(
                child.spec,
                _without_item_input(child),
                self.scope_inputs(scope),
                self.lookup_in(scope),
                job_placeholders(self.run, child.name),
            )
            condition = (child.spec.get("triggerPolicy") or {}).get("condition")
            if condition and not evaluate_condition(str(condition), row.inputs.get("parameters") or {}):
                row.state, row.finished_at = SKIPPED, stamp
                row.error = ""
                row.log_tail = f"not triggered: the condition {condition} is false"
            elif child.kind == LOOP:
                row.inputs["items"] = loop_items(child, row.inputs.get("parameters") or {})
                row.state, row.started_at = RUNNING, stamp
            elif child.kind == DAG:
                row.state, row.started_at = RUNNING, stamp
        except (InputResolutionError, CelError) as err:
            row.state, row.error, row.finished_at = FAILED, f"task {qualified!r}: {err}", stamp
        self._store(row)
        if row.state == PENDING:
            self.started.append(qualified)
            return False
        return True

    def settle(self, scope: str) -> tuple[str | None, str]:
        """The final state of DAG ``scope`` when all its tasks are done (else None) and an error text."""
        failed: list[TaskRow] = []
        canceled = False
        for child in self.plan.children(scope):
            row = self.rows.get(qualify(scope, child.name))
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
            first = min(failed, key=lambda r: (_aware(r.finished_at), r.id or 0))
            reason = first.error or "it failed"
            return FAILED, f"task {first.qualified_name!r} failed: {reason}" if not reason.startswith("task ") else reason
        if canceled or self.canceling:
            return CANCELED, "the run was canceled"
        return SUCCEEDED, ""

    def _end(self, row: TaskRow, state: str, error: str) -> None:
        row.state, row.error, row.finished_at = state, error, now()
        self.add(row)  # the row may come from the engine's view of an earlier step
        self.changed = True

    def _finish_dag(self, row: TaskRow, state: str, error: str) -> None:
        self._end(row, state, error)
        if state == SUCCEEDED:
            dag = self.plan.task(row.qualified_name).component.get("dag") or {}
            row.outputs = resolve_dag_outputs(dag, self.lookup_in(row.qualified_name))




def _aware(value: datetime | None) -> datetime:
    if value is None:
        return now()
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _strategy(task: PlannedTask) -> str:
    return str((task.spec.get("triggerPolicy") or {}).get("strategy") or "")


def _without_item_input(task: PlannedTask) -> dict[str, Any]:
    """A loop's component without its item input, which each iteration sets."""
    if task.kind != LOOP:
        return task.component
    item = str((task.spec.get("parameterIterator") or {}).get("itemInput") or "")
    definitions = dict(task.component.get("inputDefinitions") or {})
    definitions["parameters"] = {k: v for k, v in (definitions.get("parameters") or {}).items() if k != item}
    return {**task.component, "inputDefinitions": definitions}


def _unsupported(child: PlannedTask) -> str:
    if "artifactIterator" in child.spec:
        return "loops over artifacts (artifactIterator) are not supported (KFP's backend does not implement them)"
    if child.kind not in (CONTAINER, DAG, IMPORTER, LOOP):
        return f"unsupported task kind {child.kind!r}"
    return ""
