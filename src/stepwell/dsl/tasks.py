"""Pipeline tasks: one call of a component inside a pipeline function.

Calling a component with keyword arguments inside ``@dsl.pipeline`` creates a
``PipelineTask``. Each argument is checked against the component's interface when the
task is created, so a mistake is reported at the line that made it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from stepwell.dsl.channels import PipelineArtifactChannel, PipelineChannel, PipelineParameterChannel
from stepwell.dsl.interface import IOSpec

if TYPE_CHECKING:
    from stepwell.dsl.components import PythonComponent

_CONSTANT_TYPES: dict[str, tuple[type, ...]] = {
    "STRING": (str,),
    "NUMBER_INTEGER": (int,),
    "NUMBER_DOUBLE": (float, int),
    "BOOLEAN": (bool,),
    "LIST": (list, tuple),
    "STRUCT": (dict,),
}


def sanitize_name(name: str) -> str:
    """A name fit for the IR: lowercase, runs of other characters become one ``-``."""
    return re.sub(r"-+", "-", re.sub(r"[^-0-9a-z]+", "-", name.lower())).strip("-")


def _check_constant(component: str, spec: IOSpec, value: Any) -> Any:
    allowed = _CONSTANT_TYPES[spec.parameter_type or ""]
    ok = isinstance(value, allowed)
    if spec.parameter_type != "BOOLEAN" and isinstance(value, bool):
        ok = False
    if not ok:
        raise TypeError(
            f"component {component!r}: input {spec.name!r} expects {spec.type_name}, "
            f"got {type(value).__name__} value {value!r}"
        )
    return list(value) if isinstance(value, tuple) else value


def _check_channel(component: str, spec: IOSpec, channel: PipelineChannel) -> None:
    where = f"component {component!r}: input {spec.name!r}"
    if spec.artifact_class is not None:
        if not isinstance(channel, PipelineArtifactChannel):
            raise TypeError(
                f"{where} is an artifact ({spec.type_name}) but got parameter {channel!r}"
            )
        generic = "system.Artifact"
        if generic not in (spec.type_name, channel.type_name) and (
            spec.type_name != channel.type_name
        ):
            raise TypeError(f"{where} expects {spec.type_name}, got {channel!r}")
        return
    if not isinstance(channel, PipelineParameterChannel):
        raise TypeError(f"{where} is a parameter ({spec.type_name}) but got artifact {channel!r}")
    expected, actual = spec.parameter_type, channel.parameter_type
    if expected != actual and not (expected == "NUMBER_DOUBLE" and actual == "NUMBER_INTEGER"):
        raise TypeError(
            f"{where} expects {spec.parameter_type} but got {channel!r} of type {actual}"
        )


class PipelineTask:
    """A component call inside a pipeline: its arguments, outputs and task options."""

    def __init__(self, component: PythonComponent, arguments: Mapping[str, Any], name: str) -> None:
        self.component = component
        self.name = name
        self.display_name: str | None = None
        self.enable_caching = True
        self.cache_key: str | None = None
        self.env: dict[str, str] = {}
        self._after: list[PipelineTask] = []
        self.arguments = self._bind(dict(arguments))
        self._outputs: dict[str, PipelineChannel] = {}
        for output in component.interface.outputs.values():
            if output.artifact_class is not None:
                self._outputs[output.name] = PipelineArtifactChannel(
                    output.name, output.artifact_class, task_name=name
                )
            else:
                self._outputs[output.name] = PipelineParameterChannel(
                    output.name, output.parameter_type or "", task_name=name
                )

    def _bind(self, arguments: dict[str, Any]) -> dict[str, Any]:
        component = self.component.name
        inputs = self.component.interface.inputs
        unknown = sorted(set(arguments) - set(inputs))
        if unknown:
            known = ", ".join(inputs) or "none"
            raise TypeError(
                f"component {component!r} got unexpected input(s) {', '.join(map(repr, unknown))}; "
                f"its inputs are: {known}"
            )
        bound: dict[str, Any] = {}
        for name, spec in inputs.items():
            value = arguments.get(name)
            if value is None:
                if not spec.optional:
                    raise TypeError(f"component {component!r} is missing required input {name!r}")
                continue
            if isinstance(value, PipelineTask):
                raise TypeError(
                    f"component {component!r}: input {name!r} got a task; pass one of its "
                    f"outputs instead (task.output or task.outputs['<name>'])"
                )
            if isinstance(value, PipelineChannel):
                _check_channel(component, spec, value)
                bound[name] = value
            elif spec.artifact_class is not None:
                raise TypeError(
                    f"component {component!r}: input {name!r} is an artifact ({spec.type_name}); "
                    f"pass a task output or a pipeline input, not {value!r}"
                )
            else:
                bound[name] = _check_constant(component, spec, value)
        return bound

    @property
    def outputs(self) -> dict[str, PipelineChannel]:
        """The task's outputs by name."""
        return dict(self._outputs)

    @property
    def output(self) -> PipelineChannel:
        """The task's single output; an error if it has none or several."""
        if len(self._outputs) == 1:
            return next(iter(self._outputs.values()))
        if not self._outputs:
            raise AttributeError(f"task {self.name!r} has no outputs")
        raise AttributeError(
            f"task {self.name!r} has several outputs ({', '.join(self._outputs)}); "
            "use task.outputs['<name>']"
        )

    @property
    def dependencies(self) -> list[str]:
        """Names of the tasks this one waits for (data dependencies and ``after``), sorted."""
        names = {t.name for t in self._after}
        names.update(
            v.task_name
            for v in self.arguments.values()
            if isinstance(v, PipelineChannel) and v.task_name is not None
        )
        return sorted(names)

    def after(self, *tasks: PipelineTask) -> PipelineTask:
        """Run this task only after ``tasks`` have succeeded."""
        for task in tasks:
            if not isinstance(task, PipelineTask):
                raise TypeError(f"after() takes tasks, not {task!r}")
            if task is self:
                raise ValueError(f"task {self.name!r} cannot run after itself")
            self._after.append(task)
        return self

    def set_display_name(self, name: str) -> PipelineTask:
        """Set the name shown for this task in the UI."""
        self.display_name = name
        return self

    def set_caching_options(
        self, enable_caching: bool, cache_key: str | None = None
    ) -> PipelineTask:
        """Turn result caching on or off for this task (on by default)."""
        self.enable_caching = enable_caching
        self.cache_key = cache_key
        return self

    def set_env_variable(self, name: str, value: str) -> PipelineTask:
        """Set an environment variable in the task's container."""
        self.env[name] = value
        return self

    def __repr__(self) -> str:
        return f"PipelineTask(name={self.name!r}, component={self.component.name!r})"
