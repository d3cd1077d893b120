"""Pipeline tasks: one call of a component inside a pipeline function.

Calling a component with keyword arguments inside ``@dsl.pipeline`` creates a
``PipelineTask``. Each argument is checked against the component's interface when the
task is created, so a mistake is reported at the line that made it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from stepwell.dsl.channels import (
    CHANNEL_PATTERN,
    LoopArgument,
    LoopArgumentVariable,
    PipelineArtifactChannel,
    PipelineChannel,
    PipelineParameterChannel,
)
from stepwell.dsl.interface import IOSpec
from stepwell.dsl.resources import RetryPolicy, cpu_to_float, memory_to_gb

if TYPE_CHECKING:
    from stepwell.dsl.control_flow import ExitHandler, TasksGroup

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
        if spec.is_list != channel.is_list:
            want = "a list of artifacts" if spec.is_list else "one artifact"
            hint = " (wrap it in dsl.Collected(...))" if spec.is_list else ""
            raise TypeError(f"{where} expects {want}, got {channel!r}{hint}")
        generic = "system.Artifact"
        if generic not in (spec.type_name, channel.type_name) and (
            spec.type_name != channel.type_name
        ):
            raise TypeError(f"{where} expects {spec.type_name}, got {channel!r}")
        return
    if not isinstance(channel, PipelineParameterChannel):
        raise TypeError(f"{where} is a parameter ({spec.type_name}) but got artifact {channel!r}")
    if isinstance(channel, LoopArgument | LoopArgumentVariable):
        return  # loop items are typed loosely, as in KFP
    expected, actual = spec.parameter_type, channel.parameter_type
    if expected != actual and not (expected == "NUMBER_DOUBLE" and actual == "NUMBER_INTEGER"):
        raise TypeError(
            f"{where} expects {spec.parameter_type} but got {channel!r} of type {actual}; "
            f"pass an output of type {spec.parameter_type} or change the input's annotation"
        )


class PipelineTask:
    """A component call inside a pipeline: its arguments, outputs and task options."""

    def __init__(self, component: Any, arguments: Mapping[str, Any], name: str) -> None:
        self.component = component
        self.name = name
        self.display_name: str | None = None
        self.enable_caching = True
        self.cache_key: str | None = None
        self.env: dict[str, str] = {}
        self.resources: dict[str, Any] = {}
        self.retry_policy: RetryPolicy | None = None
        self.ignore_upstream_failure_set = False
        self.group: TasksGroup | None = None
        self.exit_handler: ExitHandler | None = None
        self._after: list[PipelineTask] = []
        self.arguments = self._bind(dict(arguments))
        self._outputs: dict[str, PipelineChannel] = {}
        for output in component.interface.outputs.values():
            channel: PipelineChannel
            if output.artifact_class is not None:
                channel = PipelineArtifactChannel(
                    output.name, output.artifact_class, task_name=name, is_list=output.is_list
                )
            else:
                channel = PipelineParameterChannel(
                    output.name,
                    output.parameter_type or "",
                    task_name=name,
                    item_type=output.item_type,
                )
            channel.task = self
            self._outputs[output.name] = channel

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
            if spec.parameter_type == "TASK_FINAL_STATUS":
                if value is not None:
                    raise TypeError(
                        f"component {component!r}: input {name!r} is filled in by the engine "
                        "with the exit handler's final status; do not pass it"
                    )
                continue
            if value is None:
                if not spec.optional:
                    raise TypeError(
                        f"component {component!r} is missing required input {name!r}; "
                        f"pass {name}=... when calling it"
                    )
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
            elif isinstance(value, str) and CHANNEL_PATTERN.search(value):
                bound[name] = value  # an f-string over channels, resolved by the compiler
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
    def after_tasks(self) -> list[PipelineTask]:
        """The tasks named in ``after()``, in call order."""
        return list(self._after)

    def upstream_tasks(self) -> list[str]:
        """Names of the tasks whose outputs this task reads (not counting ``after``)."""
        names = {
            v.task_name
            for v in self.arguments.values()
            if isinstance(v, PipelineChannel) and v.task_name is not None
        }
        for value in self.arguments.values():
            if isinstance(value, str):
                names.update(m.group(1) for m in CHANNEL_PATTERN.finditer(value) if m.group(1))
        return sorted(names | {t.name for t in self._after})

    @property
    def dependencies(self) -> list[str]:
        """Names of the tasks this one waits for (data dependencies and ``after``), sorted."""
        return self.upstream_tasks()

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

    def set_retry(
        self,
        num_retries: int,
        backoff_duration: str | None = None,
        backoff_factor: float | None = None,
        backoff_max_duration: str | None = None,
    ) -> PipelineTask:
        """Retry a failed task up to ``num_retries`` times, with exponential backoff.

        Durations are strings such as ``"10s"``; the factor defaults to 2 and the longest
        wait to one hour, as in KFP.
        """
        self.retry_policy = RetryPolicy.build(
            num_retries, backoff_duration, backoff_factor, backoff_max_duration
        )
        return self

    def _set_resource(self, key: str, value: Any) -> PipelineTask:
        self.resources[key] = value
        return self

    def set_cpu_limit(self, cpu: str) -> PipelineTask:
        """Limit CPU, as a number (``"2"``, ``"0.5"``) or millicores (``"500m"``)."""
        cpu_to_float(cpu)
        return self._set_resource("cpuLimit", cpu)

    def set_cpu_request(self, cpu: str) -> PipelineTask:
        """Request CPU, as a number or millicores."""
        cpu_to_float(cpu)
        return self._set_resource("cpuRequest", cpu)

    def set_memory_limit(self, memory: str) -> PipelineTask:
        """Limit memory: bytes, or with a suffix such as ``"512M"`` or ``"4Gi"``."""
        memory_to_gb(memory)
        return self._set_resource("memoryLimit", memory)

    def set_memory_request(self, memory: str) -> PipelineTask:
        """Request memory: bytes, or with a suffix such as ``"512M"`` or ``"4Gi"``."""
        memory_to_gb(memory)
        return self._set_resource("memoryRequest", memory)

    def set_accelerator_type(self, accelerator: str) -> PipelineTask:
        """Ask for an accelerator type such as ``"nvidia.com/gpu"`` (one unless limited)."""
        self.resources.setdefault("acceleratorCount", "1")
        return self._set_resource("acceleratorType", accelerator)

    def set_accelerator_limit(self, limit: int | str) -> PipelineTask:
        """How many accelerators the task gets."""
        count = int(limit)
        if count < 0:
            raise ValueError(f"accelerator limit must be >= 0, not {limit!r}")
        return self._set_resource("acceleratorCount", str(count))

    def set_gpu_limit(self, gpu: int | str) -> PipelineTask:
        """The older name of ``set_accelerator_limit``."""
        return self.set_accelerator_limit(gpu)

    def ignore_upstream_failure(self) -> PipelineTask:
        """Run this task once its upstream tasks finish, even if they failed."""
        self.ignore_upstream_failure_set = True
        return self

    def __repr__(self) -> str:
        return f"PipelineTask(name={self.name!r}, component={self.component.name!r})"
