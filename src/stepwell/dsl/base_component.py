"""What every component shares: a name, an interface, and calling it to make a task.

Subclasses say how the task runs: ``container_spec()`` for a container, ``importer_spec()``
for ``dsl.importer``, or ``pipeline_spec`` for a component that is itself a DAG.
"""

from __future__ import annotations

from typing import Any

from stepwell.dsl.interface import ComponentInterface
from stepwell.dsl.tasks import PipelineTask, sanitize_name


class BaseComponent:
    """A callable component: ``component(a=..., b=...)`` inside a pipeline makes a task."""

    name: str
    interface: ComponentInterface
    description: str | None = None

    @property
    def pipeline_spec_name(self) -> str:
        """The pipeline name used when this component is compiled on its own."""
        return sanitize_name(self.name)

    def container_spec(self) -> dict[str, Any] | None:
        """The IR ``container`` executor spec, or None if this component is not a container."""
        return None

    def __call__(self, *args: Any, **kwargs: Any) -> PipelineTask:
        from stepwell.dsl.graph import current_graph

        if args:
            raise TypeError(
                f"component {self.name!r} takes keyword arguments only; got {len(args)} "
                f"positional argument(s). Call it as {self.name}("
                + ", ".join(f"{n}=..." for n in self.interface.inputs)
                + ")"
            )
        graph = current_graph()
        if graph is None:
            raise RuntimeError(
                f"component {self.name!r} was called outside a pipeline; call components "
                "inside a @dsl.pipeline function"
            )
        return graph.add_task(self, kwargs)

    def __repr__(self) -> str:
        return f"<stepwell component {self.name}>"
