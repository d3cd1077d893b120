"""Build KFP's PipelineSpec IR (schema 2.1.0) as a JSON-able dict.

The dict uses protobuf JSON names (lowerCamelCase), as a ``json_format.MessageToDict``
of the IR message would: numbers in ``Value`` fields are doubles (an integer default is
written ``1.0``), empty messages and unset fields are omitted. Every task gets its own
``comp-<name>``/``exec-<name>`` pair, de-duplicated with ``-2``, ``-3``, ... like KFP.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stepwell.dsl.channels import PipelineArtifactChannel, PipelineChannel
from stepwell.dsl.components import PythonComponent
from stepwell.dsl.graph import unique_name
from stepwell.dsl.interface import NO_DEFAULT, ComponentInterface, IOSpec
from stepwell.dsl.pipelines import Pipeline
from stepwell.dsl.tasks import PipelineTask, sanitize_name

SCHEMA_VERSION = "2.1.0"


def sdk_version() -> str:
    """``stepwell-<version>``, written as the IR's ``sdkVersion``."""
    from stepwell import __version__

    return f"stepwell-{__version__}"


def to_value(value: Any) -> Any:
    """``value`` as a protobuf ``Value`` reads back: numbers become floats, tuples lists."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, list | tuple):
        return [to_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_value(v) for k, v in value.items()}
    raise TypeError(f"{value!r} of type {type(value).__name__} cannot be stored in the IR")


def _artifact_type(spec: IOSpec) -> dict[str, str]:
    cls = spec.artifact_class
    assert cls is not None
    return {"schemaTitle": cls.schema_title, "schemaVersion": cls.schema_version}


def interface_definitions(interface: ComponentInterface) -> dict[str, Any]:
    """``inputDefinitions`` and ``outputDefinitions`` for an interface (empty ones omitted)."""
    result: dict[str, Any] = {}
    inputs: dict[str, dict[str, Any]] = {}
    for spec in interface.inputs.values():
        entry: dict[str, Any]
        if spec.artifact_class is not None:
            entry = {"artifactType": _artifact_type(spec)}
            kind = "artifacts"
        else:
            entry = {"parameterType": spec.parameter_type}
            if spec.default is not NO_DEFAULT:
                entry["defaultValue"] = to_value(spec.default)
            kind = "parameters"
        if spec.optional:
            entry["isOptional"] = True
        if spec.description:
            entry["description"] = spec.description
        inputs.setdefault(kind, {})[spec.name] = entry
    outputs: dict[str, dict[str, Any]] = {}
    for spec in interface.outputs.values():
        if spec.artifact_class is not None:
            entry, kind = {"artifactType": _artifact_type(spec)}, "artifacts"
        else:
            entry, kind = {"parameterType": spec.parameter_type}, "parameters"
        if spec.description:
            entry["description"] = spec.description
        outputs.setdefault(kind, {})[spec.name] = entry
    if inputs:
        result["inputDefinitions"] = inputs
    if outputs:
        result["outputDefinitions"] = outputs
    return result


def _task_inputs(task: PipelineTask) -> dict[str, Any]:
    parameters: dict[str, Any] = {}
    artifacts: dict[str, Any] = {}
    for name, value in task.arguments.items():
        if isinstance(value, PipelineArtifactChannel):
            if value.task_name is None:
                artifacts[name] = {"componentInputArtifact": value.name}
            else:
                artifacts[name] = {
                    "taskOutputArtifact": {
                        "producerTask": value.task_name,
                        "outputArtifactKey": value.name,
                    }
                }
        elif isinstance(value, PipelineChannel):
            if value.task_name is None:
                parameters[name] = {"componentInputParameter": value.name}
            else:
                parameters[name] = {
                    "taskOutputParameter": {
                        "producerTask": value.task_name,
                        "outputParameterKey": value.name,
                    }
                }
        else:
            parameters[name] = {"runtimeValue": {"constant": to_value(value)}}
    inputs: dict[str, Any] = {}
    if parameters:
        inputs["parameters"] = parameters
    if artifacts:
        inputs["artifacts"] = artifacts
    return inputs


def task_spec(task: PipelineTask, component_name: str) -> dict[str, Any]:
    """The ``PipelineTaskSpec`` of one task."""
    spec: dict[str, Any] = {
        "taskInfo": {"name": task.display_name or task.name},
        "componentRef": {"name": component_name},
    }
    inputs = _task_inputs(task)
    if inputs:
        spec["inputs"] = inputs
    if task.dependencies:
        spec["dependentTasks"] = task.dependencies
    caching: dict[str, Any] = {"enableCache": True} if task.enable_caching else {}
    if task.cache_key:
        caching["cacheKey"] = task.cache_key
    spec["cachingOptions"] = caching
    return spec


def _container(task: PipelineTask) -> dict[str, Any]:
    container = task.component.container_spec()
    if task.env:
        container["env"] = [{"name": k, "value": v} for k, v in task.env.items()]
    return {"container": container}


def dag_outputs(outputs: Mapping[str, PipelineChannel]) -> dict[str, Any]:
    """``dag.outputs`` re-exporting task outputs as the pipeline's outputs."""
    parameters: dict[str, Any] = {}
    artifacts: dict[str, Any] = {}
    for key, channel in outputs.items():
        if isinstance(channel, PipelineArtifactChannel):
            artifacts[key] = {
                "artifactSelectors": [
                    {"producerSubtask": channel.task_name, "outputArtifactKey": channel.name}
                ]
            }
        else:
            parameters[key] = {
                "valueFromParameter": {
                    "producerSubtask": channel.task_name,
                    "outputParameterKey": channel.name,
                }
            }
    result: dict[str, Any] = {}
    if artifacts:
        result["artifacts"] = artifacts
    if parameters:
        result["parameters"] = parameters
    return result


def _as_pipeline(obj: Any) -> Pipeline:
    if isinstance(obj, Pipeline):
        return obj
    if isinstance(obj, PythonComponent):
        return Pipeline.from_component(obj)
    raise TypeError(
        f"expected a @dsl.pipeline or @dsl.component object, got {type(obj).__name__}: {obj!r}"
    )


def _apply_parameters(root: dict[str, Any], parameters: Mapping[str, Any]) -> None:
    definitions = root.get("inputDefinitions", {})
    for name, value in parameters.items():
        if name in definitions.get("parameters", {}):
            if value is not None:
                definitions["parameters"][name]["defaultValue"] = to_value(value)
        elif name in definitions.get("artifacts", {}):
            raise ValueError(f"pipeline parameter {name!r} is an artifact; it cannot have a value")
        else:
            raise ValueError(f"pipeline parameter {name!r} does not match any pipeline input")


def compile_to_dict(
    pipeline_func: Any, pipeline_parameters: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Compile a ``@dsl.pipeline`` (or a single ``@dsl.component``) to the IR dict.

    ``pipeline_parameters`` override the defaults of the pipeline's input parameters.
    The result is JSON-able and parses as ``pipeline_spec_pb2.PipelineSpec``.
    """
    pipeline = _as_pipeline(pipeline_func)
    if not pipeline.tasks:
        raise ValueError(f"pipeline {pipeline.name!r} has no tasks; call a component in it")
    components: dict[str, Any] = {}
    executors: dict[str, Any] = {}
    tasks: dict[str, Any] = {}
    taken: set[str] = set()
    for task in pipeline.tasks.values():
        base = sanitize_name(task.component.name) or "component"
        comp_name = "comp-" + unique_name(base, taken)
        exec_label = "exec-" + comp_name[len("comp-") :]
        components[comp_name] = {
            "executorLabel": exec_label,
            **interface_definitions(task.component.interface),
        }
        executors[exec_label] = _container(task)
        tasks[task.name] = task_spec(task, comp_name)

    root: dict[str, Any] = {"dag": {"tasks": tasks}}
    if pipeline.outputs:
        root["dag"]["outputs"] = dag_outputs(pipeline.outputs)
    root.update(interface_definitions(pipeline.interface))
    if pipeline_parameters:
        _apply_parameters(root, pipeline_parameters)

    info: dict[str, Any] = {"name": pipeline.name}
    if pipeline.component is None:  # a compiled component keeps its docstring out of pipelineInfo
        if pipeline.description:
            info["description"] = pipeline.description
        if pipeline.display_name:
            info["displayName"] = pipeline.display_name

    spec: dict[str, Any] = {
        "components": components,
        "deploymentSpec": {"executors": executors},
        "pipelineInfo": info,
        "root": root,
        "schemaVersion": SCHEMA_VERSION,
        "sdkVersion": sdk_version(),
    }
    if pipeline.pipeline_root:
        spec["defaultPipelineRoot"] = pipeline.pipeline_root
    return spec
