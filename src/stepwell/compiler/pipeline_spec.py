"""Build KFP's PipelineSpec IR (schema 2.1.0) as a JSON-able dict.

The dict uses protobuf JSON names (lowerCamelCase), as a ``json_format.MessageToDict``
of the IR message would: numbers in ``Value`` fields are doubles (an integer default is
written ``1.0``), empty messages and unset fields are omitted. Components are named
``comp-<task or group name>`` and executors ``exec-<component name>``, de-duplicated
with ``-2``, ``-3``, ... in the order KFP visits them, so names match KFP's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stepwell.compiler.dag_builder import DagBuilder
from stepwell.dsl.base_component import BaseComponent
from stepwell.dsl.interface import NO_DEFAULT, ComponentInterface, IOSpec
from stepwell.dsl.pipelines import Pipeline

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
            if spec.is_list:
                entry["isArtifactList"] = True
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
            if spec.is_list:
                entry["isArtifactList"] = True
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


def _as_pipeline(obj: Any) -> Pipeline:
    if isinstance(obj, Pipeline):
        return obj
    if isinstance(obj, BaseComponent):
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


def compile_pipeline(pipeline: Pipeline) -> dict[str, Any]:
    """``components``, ``deploymentSpec`` and ``root`` of a traced pipeline."""
    if not pipeline.tasks:
        raise ValueError(f"pipeline {pipeline.name!r} has no tasks; call a component in it")
    builder = DagBuilder(pipeline, compile_pipeline, interface_definitions, to_value)
    return builder.build()


def compile_to_dict(
    pipeline_func: Any, pipeline_parameters: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Compile a ``@dsl.pipeline`` (or a single component) to the IR dict.

    ``pipeline_parameters`` override the defaults of the pipeline's input parameters.
    The result is JSON-able and parses as ``pipeline_spec_pb2.PipelineSpec``.
    """
    pipeline = _as_pipeline(pipeline_func)
    body = compile_pipeline(pipeline)
    root = body["root"]
    if pipeline_parameters:
        _apply_parameters(root, pipeline_parameters)

    info: dict[str, Any] = {"name": pipeline.name}
    if pipeline.component is None:  # a compiled component keeps its docstring out of pipelineInfo
        if pipeline.description:
            info["description"] = pipeline.description
        if pipeline.display_name:
            info["displayName"] = pipeline.display_name

    spec: dict[str, Any] = {
        "components": body["components"],
        "deploymentSpec": {"executors": body["executors"]},
        "pipelineInfo": info,
        "root": root,
        "schemaVersion": SCHEMA_VERSION,
        "sdkVersion": sdk_version(),
    }
    if pipeline.pipeline_root:
        spec["defaultPipelineRoot"] = pipeline.pipeline_root
    return spec
