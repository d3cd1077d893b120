"""Resolving a task's inputs and a DAG's outputs (pure functions; kfp-facts §2.4, §4.2).

Values travel as the IR's JSON: parameters are plain JSON values, artifacts are lists of
``{"uri", "artifact_id", "schema_title", "metadata", ...}`` records. ``Outputs`` and
``Inputs`` dicts have the shape ``{"parameters": {...}, "artifacts": {name: [...]}}``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from stepwell.ir import integral
from stepwell.ir.cel import CelError, select
from stepwell.runtime._launch_placeholders import text_form

#: Looks up a sibling task's outputs by its (unqualified) name; None when it has none.
OutputsLookup = Callable[[str], "Mapping[str, Any] | None"]

_SELF_REF = re.compile(r"\{\{\$\.inputs\.parameters\['([^']*)'\]\}\}")
_JOB_REF = re.compile(r"\{\{\$\.(pipeline_[a-z_]+|workspace_path)\}\}")


_JSON_TYPES: dict[str, type | tuple[type, ...]] = {
    "NUMBER_INTEGER": (int, float),
    "NUMBER_DOUBLE": (int, float),
    "BOOLEAN": bool,
    "LIST": list,
    "STRUCT": dict,
}


class InputResolutionError(Exception):
    """A task input cannot be resolved; the message names the input."""


def coerce_to_type(value: Any, parameter_type: str) -> Any:
    """``value`` in the form a component declaring ``parameter_type`` expects.

    Whole-number doubles become ints for NUMBER_INTEGER and inside lists and structs; a
    non-string value for a STRING input becomes its text form (as KFP's driver does). A
    string for a typed input is read as JSON when it parses as that type: loop items drawn
    from a list parameter are typed STRING by the compiler (kfp-facts §2.5) yet feed
    ``int`` or ``dict`` inputs.
    """
    if value is None:
        return None
    if isinstance(value, str) and parameter_type in _JSON_TYPES:
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = None
        if isinstance(parsed, _JSON_TYPES[parameter_type]) and not (
            isinstance(parsed, bool) and parameter_type != "BOOLEAN"
        ):
            value = parsed
    if parameter_type == "NUMBER_INTEGER":
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value
    if parameter_type == "STRING" and not isinstance(value, str):
        return text_form(integral(value))
    if parameter_type in ("LIST", "STRUCT", "TASK_FINAL_STATUS"):
        return integral(value)
    if parameter_type == "NUMBER_DOUBLE":
        return value
    return integral(value) if isinstance(value, (list, dict)) else value


def _outputs_of(lookup: OutputsLookup, producer: str, what: str) -> Mapping[str, Any]:
    outputs = lookup(producer)
    if outputs is None:
        raise InputResolutionError(f"{what}: task {producer!r} has not produced outputs")
    return outputs


def resolve_parameter(
    name: str,
    binding: Mapping[str, Any],
    parent_parameters: Mapping[str, Any],
    lookup: OutputsLookup,
    job: Mapping[str, str],
) -> tuple[bool, Any]:
    """``(present, value)`` of one input parameter binding; absent inputs give ``(False, None)``.

    A ``parameterExpressionSelector`` (CEL over the value) is applied to a present value.
    """
    present, value = _resolve_binding(name, binding, parent_parameters, lookup, job)
    selector = binding.get("parameterExpressionSelector")
    if present and selector:
        try:
            value = select(str(selector), value)
        except CelError as err:
            raise InputResolutionError(f"input parameter {name!r}: selector {selector!r}: {err}") from None
    return present, value


def _resolve_binding(
    name: str,
    binding: Mapping[str, Any],
    parent_parameters: Mapping[str, Any],
    lookup: OutputsLookup,
    job: Mapping[str, str],
) -> tuple[bool, Any]:
    what = f"input parameter {name!r}"
    if "componentInputParameter" in binding:
        source = binding["componentInputParameter"]
        value = parent_parameters.get(source)
        return (value is not None), value
    if "taskOutputParameter" in binding:
        ref = binding["taskOutputParameter"] or {}
        producer, key = ref.get("producerTask", ""), ref.get("outputParameterKey", "")
        params = _outputs_of(lookup, producer, what).get("parameters") or {}
        if key not in params:
            raise InputResolutionError(f"{what}: task {producer!r} has no output parameter {key!r}")
        return True, params[key]
    if "runtimeValue" in binding:
        constant = (binding["runtimeValue"] or {}).get("constant")
        if isinstance(constant, str):
            whole = _JOB_REF.fullmatch(constant)
            if whole and whole.group(1) in job:
                return True, job[whole.group(1)]
        return (constant is not None), constant
    if "runtimeParameter" in binding:
        value = parent_parameters.get(binding["runtimeParameter"])
        return (value is not None), value
    if "taskFinalStatus" in binding:
        producer = (binding["taskFinalStatus"] or {}).get("producerTask", "")
        status = (_outputs_of(lookup, producer, what).get("final_status")) or {}
        return True, dict(status)
    raise InputResolutionError(f"{what}: unsupported binding {sorted(binding)}")


def substitute_references(value: str, parameters: Mapping[str, Any], job: Mapping[str, str]) -> str:
    """``value`` with ``{{$.inputs.parameters['x']}}`` and ``{{$.pipeline_*}}`` placeholders filled in."""

    def param(m: re.Match[str]) -> str:
        if m.group(1) not in parameters:
            return m.group(0)
        return text_form(parameters[m.group(1)])

    def job_ref(m: re.Match[str]) -> str:
        return job.get(m.group(1), m.group(0))

    return _JOB_REF.sub(job_ref, _SELF_REF.sub(param, value))


def resolve_inputs(
    task_spec: Mapping[str, Any],
    component: Mapping[str, Any],
    parent_inputs: Mapping[str, Any],
    lookup: OutputsLookup,
    job: Mapping[str, str],
) -> dict[str, Any]:
    """The resolved inputs of a task: ``{"parameters": {...}, "artifacts": {...}}``.

    ``parent_inputs`` are the enclosing DAG's resolved inputs (the run's parameters at
    the root); ``lookup`` gives sibling outputs. f-string constants that reference other
    inputs (``pipelinechannel--*``) are filled in after everything else is resolved.
    """
    inputs = task_spec.get("inputs") or {}
    definitions = component.get("inputDefinitions") or {}
    param_defs = definitions.get("parameters") or {}
    parent_params = parent_inputs.get("parameters") or {}
    parameters: dict[str, Any] = {}
    constants: list[str] = []
    for name, binding in (inputs.get("parameters") or {}).items():
        present, value = resolve_parameter(name, binding, parent_params, lookup, job)
        if not present:
            continue
        parameters[name] = value
        if "runtimeValue" in binding and isinstance(value, str):
            constants.append(name)
    for name in constants:
        parameters[name] = substitute_references(parameters[name], parameters, job)
    is_dag = "dag" in component
    for name, value in list(parameters.items()):
        declared = (param_defs.get(name) or {}).get("parameterType", "")
        if is_dag and declared == "STRING":
            declared = ""  # a DAG passes values through; the consuming container converts them
        parameters[name] = coerce_to_type(value, declared)
    for name, spec in param_defs.items():
        if name not in parameters and not spec.get("isOptional") and "defaultValue" not in spec:
            raise InputResolutionError(f"input parameter {name!r} is required but has no value")

    artifacts: dict[str, list[dict[str, Any]]] = {}
    parent_artifacts = parent_inputs.get("artifacts") or {}
    for name, binding in (inputs.get("artifacts") or {}).items():
        what = f"input artifact {name!r}"
        if "taskOutputArtifact" in binding:
            ref = binding["taskOutputArtifact"] or {}
            producer, key = ref.get("producerTask", ""), ref.get("outputArtifactKey", "")
            produced = (_outputs_of(lookup, producer, what).get("artifacts") or {}).get(key)
            if not produced:
                raise InputResolutionError(f"{what}: task {producer!r} has no output artifact {key!r}")
            artifacts[name] = [dict(a) for a in produced]
        elif "componentInputArtifact" in binding:
            found = parent_artifacts.get(binding["componentInputArtifact"])
            if found:
                artifacts[name] = [dict(a) for a in found]
        else:
            raise InputResolutionError(f"{what}: unsupported binding {sorted(binding)}")
    for name, spec in (definitions.get("artifacts") or {}).items():
        if name not in artifacts and not spec.get("isOptional"):
            raise InputResolutionError(f"input artifact {name!r} is required but has no value")
    return {"parameters": parameters, "artifacts": artifacts}


def resolve_dag_outputs(dag: Mapping[str, Any], lookup: OutputsLookup) -> dict[str, Any]:
    """A DAG's outputs from its children's (``dag.outputs``; ``valueFromOneof`` takes the branch that ran)."""
    spec = dag.get("outputs") or {}
    parameters: dict[str, Any] = {}
    for name, source in (spec.get("parameters") or {}).items():
        selectors = []
        if "valueFromParameter" in source:
            selectors = [source["valueFromParameter"]]
        elif "valueFromOneof" in source:
            selectors = (source["valueFromOneof"] or {}).get("parameterSelectors") or []
        for selector in selectors:
            outputs = lookup(selector.get("producerSubtask", "")) or {}
            params = outputs.get("parameters") or {}
            if selector.get("outputParameterKey") in params:
                parameters[name] = params[selector["outputParameterKey"]]
                break
    artifacts: dict[str, list[dict[str, Any]]] = {}
    for name, source in (spec.get("artifacts") or {}).items():
        collected: list[dict[str, Any]] = []
        for selector in source.get("artifactSelectors") or []:
            outputs = lookup(selector.get("producerSubtask", "")) or {}
            collected += list((outputs.get("artifacts") or {}).get(selector.get("outputArtifactKey", "")) or [])
        if collected:
            artifacts[name] = collected
    return {"parameters": parameters, "artifacts": artifacts}
