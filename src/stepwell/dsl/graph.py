"""The graph being traced while a ``@dsl.pipeline`` function runs.

Component calls add tasks to the innermost open control-flow group (``dsl.If``,
``dsl.ParallelFor``, ...) of the innermost active graph; task names are the sanitized
component name, made unique within the pipeline with ``-2``, ``-3``, ... as in KFP.
Groups are numbered from one counter per pipeline (``condition-2``, ``for-loop-3``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from stepwell.dsl.control_flow import TasksGroup
from stepwell.dsl.tasks import PipelineTask, sanitize_name

if TYPE_CHECKING:
    from stepwell.dsl.channels import PipelineChannel

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
    """The tasks and control-flow groups of one pipeline, in the order they were created."""

    def __init__(self, pipeline_name: str) -> None:
        self.pipeline_name = pipeline_name
        self.tasks: dict[str, PipelineTask] = {}
        self.root = TasksGroup("root", pipeline_name)
        self.stack: list[TasksGroup] = [self.root]
        self.channels: dict[str, PipelineChannel] = {}
        self._names: set[str] = set()
        self._group_id = 0

    @property
    def current_group(self) -> TasksGroup:
        """The innermost open group: new tasks and groups go in here."""
        return self.stack[-1]

    def next_group_id(self) -> str:
        """The next number of the pipeline-wide group counter."""
        self._group_id += 1
        return str(self._group_id)

    def register(self, channel: PipelineChannel) -> PipelineChannel:
        """Remember ``channel`` so an f-string that mentions it can be resolved."""
        self.channels[channel.pattern] = channel
        return channel

    def add_task(self, component: Any, arguments: Mapping[str, Any]) -> PipelineTask:
        """Create a task calling ``component`` with ``arguments`` and add it to the graph."""
        base = sanitize_name(component.name) or "task"
        taken = set(self._names)
        name = unique_name(base, taken)
        task = PipelineTask(component, arguments, name)  # validates before the name is used
        self._names.add(name)
        self.tasks[name] = task
        task.group = self.current_group
        self.current_group.children.append(task)
        for output in task.outputs.values():
            self.register(output)
        return task

    def __enter__(self) -> PipelineGraph:
        _ACTIVE.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _ACTIVE.remove(self)


def current_graph() -> PipelineGraph | None:
    """The graph being traced, or None outside a pipeline function."""
    return _ACTIVE[-1] if _ACTIVE else None


def require_graph(what: str) -> PipelineGraph:
    """The graph being traced; a clear error when ``what`` is used outside a pipeline."""
    graph = current_graph()
    if graph is None:
        raise RuntimeError(f"{what} can only be used inside a @dsl.pipeline function")
    return graph
