"""Navigating a PipelineSpec: DAG scopes, tasks, their components and dependencies.

A *scope* is a DAG that tasks live in: the root DAG (qualified name ``""``) or a task
whose component has a ``dag``. A task's qualified name is its name prefixed by the
names of its enclosing DAG tasks, joined with ``/``; a loop iteration adds ``[i]`` to
its loop's segment (``for-loop-2[0]/add``). The *spec path* of a qualified name drops
the ``[i]`` parts: it names the task in the spec, shared by every iteration.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from stepwell.errors import InvalidArgument

CONTAINER = "container"
DAG = "dag"
IMPORTER = "importer"
#: A ParallelFor task; its iterations are DAG rows named ``<loop>[i]``.
LOOP = "loop"

_INDEX = re.compile(r"\[\d+\]")


def qualify(parent: str, name: str) -> str:
    """The qualified name of task ``name`` inside the DAG task ``parent`` (``""`` = root)."""
    return f"{parent}/{name}" if parent else name


def spec_path(qualified: str) -> str:
    """``qualified`` without its loop-iteration indices."""
    return _INDEX.sub("", qualified)


def iteration_name(loop: str, index: int) -> str:
    """The qualified name of iteration ``index`` of the loop task ``loop``."""
    return f"{loop}[{index}]"


@dataclass(frozen=True)
class PlannedTask:
    """One task of a DAG scope, with everything the engine needs to know about its spec."""

    name: str
    qualified: str
    parent: str
    spec: dict[str, Any]
    component_name: str
    component: dict[str, Any]
    kind: str

    @property
    def display_name(self) -> str:
        return str((self.spec.get("taskInfo") or {}).get("name") or self.name)

    def dependencies(self) -> set[str]:
        """Sibling tasks that must finish first: ``dependentTasks`` plus input producers."""
        deps = set(self.spec.get("dependentTasks") or [])
        inputs = self.spec.get("inputs") or {}
        for binding in (inputs.get("parameters") or {}).values():
            for key in ("taskOutputParameter", "taskFinalStatus"):
                producer = (binding.get(key) or {}).get("producerTask")
                if producer:
                    deps.add(producer)
        for binding in (inputs.get("artifacts") or {}).values():
            producer = (binding.get("taskOutputArtifact") or {}).get("producerTask")
            if producer:
                deps.add(producer)
        return deps


class PipelinePlan:
    """Read-only view of one pipeline spec, shared by every step of a run."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.components: dict[str, Any] = spec.get("components") or {}
        self.executors: dict[str, Any] = (spec.get("deploymentSpec") or {}).get("executors") or {}
        self._scopes: dict[str, dict[str, Any]] = {"": spec.get("root") or {}}
        self._children: dict[str, list[PlannedTask]] = {}

    @property
    def name(self) -> str:
        return str((self.spec.get("pipelineInfo") or {}).get("name") or "pipeline")

    def scope_component(self, scope: str) -> dict[str, Any]:
        """The component whose DAG the scope is (the root component for ``""``)."""
        scope = spec_path(scope)
        if scope not in self._scopes:
            parent, _, name = scope.rpartition("/")
            for task in self.children(parent):
                if task.name == name:
                    if task.kind not in (DAG, LOOP):
                        raise InvalidArgument(f"task {scope!r} is not a DAG")
                    self._scopes[scope] = task.component
                    break
            else:
                raise InvalidArgument(f"no DAG task {scope!r} in the pipeline")
        return self._scopes[scope]

    def children(self, scope: str) -> list[PlannedTask]:
        """The tasks directly inside the DAG ``scope``, in spec order (qualified by spec path)."""
        scope = spec_path(scope)
        if scope not in self._children:
            dag = self.scope_component(scope).get("dag") or {}
            found = []
            for name, task_spec in (dag.get("tasks") or {}).items():
                comp_name = (task_spec.get("componentRef") or {}).get("name", "")
                component = self.components.get(comp_name)
                if component is None:
                    raise InvalidArgument(f"task {qualify(scope, name)!r} refers to unknown component {comp_name!r}")
                found.append(
                    PlannedTask(
                        name=name,
                        qualified=qualify(scope, name),
                        parent=scope,
                        spec=task_spec,
                        component_name=comp_name,
                        component=component,
                        kind=LOOP if "parameterIterator" in task_spec else self._kind(component),
                    )
                )
            self._children[scope] = found
        return self._children[scope]

    def task(self, qualified: str) -> PlannedTask:
        """The planned task with this qualified name (iteration indices are ignored)."""
        parent, _, name = spec_path(qualified).rpartition("/")
        for task in self.children(parent):
            if task.name == name:
                return task
        raise InvalidArgument(f"no task {qualified!r} in the pipeline")

    def executor(self, component: dict[str, Any]) -> dict[str, Any]:
        """The ``deploymentSpec`` executor of a component."""
        return self.executors.get(component.get("executorLabel", "")) or {}

    def _kind(self, component: dict[str, Any]) -> str:
        if "dag" in component:
            return DAG
        if "importer" in self.executor(component):
            return IMPORTER
        return CONTAINER
