"""The graph being traced while a ``@dsl.pipeline`` function runs.

Component calls add tasks to the innermost active graph; task names are the sanitized
component name, made unique within the pipeline with ``-2``, ``-3``, ... as in KFP.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from stepwell.dsl.tasks import PipelineTask, sanitize_name

if TYPE_CHECKING:
    from stepwell.dsl.components import PythonComponent

_ACTIVE: list[PipelineGraph] = []


def unique_name(base: str, taken: set[str]) -> str:
    """``base``, or ``base-2``, ``base-3``, ... whichever is not in ``taken`` (then taken)."""
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}-{n}"
    taken.add(name)
    return name


class PipelineGraph:
    """The tasks of one pipeline, in the order they were created."""

    def __init__(self, pipeline_name: str) -> None:
        self.pipeline_name = pipeline_name
        self.tasks: dict[str, PipelineTask] = {}
        self._names: set[str] = set()

    def add_task(self, component: PythonComponent, arguments: Mapping[str, Any]) -> PipelineTask:
        """Create a task calling ``component`` with ``arguments`` and add it to the graph."""
        base = sanitize_name(component.name) or "task"
        taken = set(self._names)
        name = unique_name(base, taken)
        task = PipelineTask(component, arguments, name)  # validates before the name is used
        self._names.add(name)
        self.tasks[name] = task
        return task

    def __enter__(self) -> PipelineGraph:
        _ACTIVE.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _ACTIVE.remove(self)


def current_graph() -> PipelineGraph | None:
    """The graph being traced, or None outside a pipeline function."""
    return _ACTIVE[-1] if _ACTIVE else None
