"""``@dsl.pipeline``: trace a function of component calls into a graph of tasks.

The function runs once, when it is decorated, with a channel in place of each input;
every component call inside it adds a task. What it returns (a task output, or a
``NamedTuple`` of them) becomes the pipeline's outputs.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, overload

from stepwell.dsl.base_component import BaseComponent
from stepwell.dsl.channels import PipelineArtifactChannel, PipelineChannel, PipelineParameterChannel
from stepwell.dsl.graph import PipelineGraph, current_graph
from stepwell.dsl.interface import ComponentInterface, IOSpec, function_interface
from stepwell.dsl.tasks import PipelineTask, sanitize_name


def _input_channels(
    interface: ComponentInterface, graph: PipelineGraph
) -> dict[str, PipelineChannel]:
    channels: dict[str, PipelineChannel] = {}
    for spec in interface.inputs.values():
        if spec.artifact_class is not None:
            channels[spec.name] = PipelineArtifactChannel(
                spec.name, spec.artifact_class, is_list=spec.is_list
            )
        else:
            channels[spec.name] = PipelineParameterChannel(spec.name, spec.parameter_type or "")
        graph.register(channels[spec.name])
    return channels


class Pipeline(BaseComponent):
    """A traced pipeline: its interface, tasks and outputs.

    ``pipeline_spec_name`` is the IR pipeline name and ``python_func`` the decorated
    function; ``tasks`` are in creation order; ``outputs`` maps each pipeline output to
    the task output it re-exports.
    """

    def __init__(
        self,
        *,
        name: str,
        interface: ComponentInterface,
        graph: PipelineGraph,
        outputs: dict[str, PipelineChannel],
        python_func: Callable[..., Any] | None = None,
        description: str | None = None,
        display_name: str | None = None,
        pipeline_root: str | None = None,
        component: BaseComponent | None = None,
    ) -> None:
        self.name = name
        self.interface = interface
        self.tasks: dict[str, PipelineTask] = graph.tasks
        self.graph = graph
        self.outputs = outputs
        self.python_func = python_func
        self.description = description
        self.display_name = display_name
        self.pipeline_root = pipeline_root
        self.component = component
        if python_func is not None:
            functools.update_wrapper(self, python_func)

    @property
    def pipeline_spec_name(self) -> str:
        """The IR pipeline name (``pipelineInfo.name``)."""
        return self.name

    @classmethod
    def from_function(
        cls,
        func: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        display_name: str | None = None,
        pipeline_root: str | None = None,
    ) -> Pipeline:
        """Trace ``func`` into a pipeline."""
        if not inspect.isfunction(func):
            raise TypeError(f"@dsl.pipeline decorates a function, not {func!r}")
        pipeline_name = name or sanitize_name(func.__name__)
        interface = function_interface(func, pipeline_name, description)
        for spec in interface.inputs.values():
            if spec.is_artifact and spec.optional:
                raise TypeError(
                    f"pipeline {pipeline_name!r}: artifact input {spec.name!r} cannot have a default"
                )
        parameters = inspect.signature(func).parameters
        if any(output in parameters for output in interface.outputs):
            raise TypeError(
                f"pipeline {pipeline_name!r}: Output[...] inputs are not allowed in a pipeline; "
                "return a task output instead"
            )
        graph = PipelineGraph(pipeline_name)
        with graph:
            result = func(**_input_channels(interface, graph))
        outputs = _bind_outputs(pipeline_name, interface, result)
        return cls(
            name=pipeline_name,
            interface=interface,
            graph=graph,
            outputs=outputs,
            python_func=func,
            description=interface.description,
            display_name=display_name,
            pipeline_root=pipeline_root,
        )

    @classmethod
    def from_component(cls, component: BaseComponent) -> Pipeline:
        """A one-task pipeline that runs ``component``, as compiling a component does."""
        name = component.pipeline_spec_name
        interface = ComponentInterface(
            name=name,
            description=component.description,
            inputs=dict(component.interface.inputs),
            outputs=dict(component.interface.outputs),
        )
        graph = PipelineGraph(name)
        with graph:
            channels = _input_channels(interface, graph)
            passed = {
                k: v
                for k, v in channels.items()
                if interface.inputs[k].parameter_type != "TASK_FINAL_STATUS"
            }
            task = component(**passed)
        return cls(
            name=name,
            interface=interface,
            graph=graph,
            outputs=task.outputs,
            python_func=getattr(component, "python_func", None),
            component=component,
        )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if current_graph() is not None:
            return super().__call__(*args, **kwargs)  # a pipeline used as a component
        raise RuntimeError(
            f"pipeline {self.name!r} cannot be called directly; compile it with "
            "stepwell.compiler.Compiler().compile(...) or run it with `stepwell run`"
        )

    def __repr__(self) -> str:
        return f"<stepwell pipeline {self.name}>"


def _bind_outputs(
    pipeline_name: str, interface: ComponentInterface, result: Any
) -> dict[str, PipelineChannel]:
    where = f"pipeline {pipeline_name!r}"
    if result is None:
        if interface.outputs:
            raise TypeError(f"{where} declares outputs but returns nothing")
        return {}
    if isinstance(result, PipelineTask):
        raise TypeError(f"{where} returns a task; return one of its outputs (task.output)")
    if isinstance(result, PipelineChannel):
        values = {"Output": result}
    elif hasattr(result, "_fields"):
        values = dict(zip(result._fields, result, strict=True))
    else:
        raise TypeError(f"{where} must return a task output, not {result!r}")
    outputs: dict[str, PipelineChannel] = {}
    for key, channel in values.items():
        if not isinstance(channel, PipelineChannel):
            raise TypeError(f"{where}: output {key!r} must be a task output, not {channel!r}")
        if channel.task_name is None:
            raise TypeError(f"{where}: output {key!r} must be a task output, not a pipeline input")
        if channel.task is not None and channel.task.exit_handler is not None:
            raise TypeError(f"{where}: output {key!r} cannot come from an exit task")
        spec = interface.outputs.get(key)
        if spec is None:
            spec = IOSpec(name=key)
            if isinstance(channel, PipelineArtifactChannel):
                spec.artifact_class = channel.artifact_class
                spec.is_list = channel.is_list
            elif isinstance(channel, PipelineParameterChannel):
                spec.parameter_type = channel.parameter_type
            interface.outputs[key] = spec
        elif spec.is_artifact != channel.is_artifact or (
            isinstance(channel, PipelineParameterChannel)
            and spec.parameter_type != channel.parameter_type
        ):
            raise TypeError(
                f"{where}: output {key!r} is declared as {spec.type_name} but returns {channel!r}"
            )
        outputs[key] = channel
    missing = sorted(set(interface.outputs) - set(outputs))
    if missing:
        raise TypeError(f"{where} declares output(s) {missing} that it does not return")
    return outputs


@overload
def pipeline(func: Callable[..., Any], /) -> Pipeline: ...


@overload
def pipeline(
    *,
    name: str | None = None,
    description: str | None = None,
    display_name: str | None = None,
    pipeline_root: str | None = None,
) -> Callable[[Callable[..., Any]], Pipeline]: ...


def pipeline(
    func: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    display_name: str | None = None,
    pipeline_root: str | None = None,
) -> Pipeline | Callable[[Callable[..., Any]], Pipeline]:
    """Make a pipeline from a function of component calls.

    ``name`` defaults to the function name lowercased with ``_`` -> ``-``; ``description``
    defaults to the docstring's description; ``pipeline_root`` becomes the IR's
    ``defaultPipelineRoot``.
    """

    def decorate(f: Callable[..., Any]) -> Pipeline:
        return Pipeline.from_function(
            f,
            name=name,
            description=description,
            display_name=display_name,
            pipeline_root=pipeline_root,
        )

    if func is not None:
        return decorate(func)
    return decorate


def is_pipeline(obj: Any) -> bool:
    """True if ``obj`` was made with ``@dsl.pipeline``."""
    return isinstance(obj, Pipeline) and obj.component is None
