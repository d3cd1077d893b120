"""Placeholder substitution and output-parameter parsing for the launcher.

Pure functions, standard library only, following KFP's launcher (kfp-facts §2.6, §3.4):
``{{$}}`` is the ExecutorInput JSON, ``{{$.inputs.parameters['x']}}`` the text form of a
parameter, artifact placeholders give ``path``/``uri``, and so on. The structured
``{"Concat": [...]}`` and ``{"IfPresent": {...}}`` placeholders are expanded too.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

_PLACEHOLDER = re.compile(r"\{\{\$(?:\.[^{}]*)?\}\}")
_INPUT_PARAM = re.compile(r"^\$\.inputs\.parameters\['([^']*)'\]$")
_ARTIFACT = re.compile(r"^\$\.(inputs|outputs)\.artifacts\['([^']*)'\]\.(path|uri|metadata)(?:\['([^']*)'\])?$")
_OUTPUT_PARAM = re.compile(r"^\$\.outputs\.parameters\['([^']*)'\]\.output_file$")


class PlaceholderError(ValueError):
    """A placeholder names something the task does not have."""


def text_form(value: Any) -> str:
    """A parameter value as placeholder text: strings raw, ``3`` not ``3.0``, ``true``, JSON for the rest."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return str(int(value))
        return repr(value)
    if value is None:
        return ""
    return json.dumps(value, separators=(",", ":"))


def with_defaults(executor_input: dict[str, Any], input_definitions: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``executor_input`` with component defaults for absent parameters (``addDefaultParams``)."""
    result = json.loads(json.dumps(executor_input))
    values = result.setdefault("inputs", {}).setdefault("parameterValues", {})
    for name, spec in input_definitions.items():
        if name not in values and isinstance(spec, dict) and "defaultValue" in spec:
            default = spec["defaultValue"]
            if spec.get("parameterType") == "NUMBER_INTEGER" and isinstance(default, float) and default.is_integer():
                default = int(default)
            values[name] = default
    return result


class Substitutions:
    """Resolves the placeholders of one task.

    ``executor_input`` is the ExecutorInput dict (with defaults already added);
    ``paths`` maps ``("inputs"|"outputs", name)`` to the artifact's local path;
    ``job`` holds ``pipeline_job_name``, ``pipeline_job_uuid``, ``pipeline_task_name``,
    ``pipeline_root`` and friends.
    """

    def __init__(
        self,
        executor_input: dict[str, Any],
        paths: Mapping[tuple[str, str], str],
        job: Mapping[str, str],
    ) -> None:
        self.executor_input = executor_input
        self.paths = paths
        self.job = job
        self._self_json = json.dumps(executor_input, separators=(",", ":"))

    def _artifact(self, side: str, name: str) -> dict[str, Any] | None:
        entry = (self.executor_input.get(side) or {}).get("artifacts", {}).get(name)
        artifacts = (entry or {}).get("artifacts") or []
        return artifacts[0] if artifacts else None

    def is_present(self, name: str) -> bool:
        """Whether input ``name`` has a (non-null) value, for ``IfPresent``."""
        inputs = self.executor_input.get("inputs") or {}
        if (inputs.get("parameterValues") or {}).get(name) is not None:
            return True
        return self._artifact("inputs", name) is not None

    def value_of(self, expr: str) -> str:
        """The text for the placeholder body ``expr`` (the part between ``{{`` and ``}}``)."""
        if expr == "$":
            return self._self_json
        m = _INPUT_PARAM.match(expr)
        if m:
            values = (self.executor_input.get("inputs") or {}).get("parameterValues") or {}
            if m.group(1) not in values:
                raise PlaceholderError(f"the task has no input parameter {m.group(1)!r}")
            return text_form(values[m.group(1)])
        m = _ARTIFACT.match(expr)
        if m:
            side, name, attr, key = m.groups()
            artifact = self._artifact(side, name)
            if artifact is None:
                raise PlaceholderError(f"the task has no {side[:-1]} artifact {name!r}")
            if attr == "uri":
                return str(artifact.get("uri", ""))
            if attr == "path":
                return self.paths.get((side, name), "")
            metadata = artifact.get("metadata") or {}
            return text_form(metadata.get(key)) if key else json.dumps(metadata)
        m = _OUTPUT_PARAM.match(expr)
        if m:
            params = (self.executor_input.get("outputs") or {}).get("parameters") or {}
            if m.group(1) not in params:
                raise PlaceholderError(f"the task has no output parameter {m.group(1)!r}")
            return str(params[m.group(1)].get("outputFile", ""))
        if expr == "$.outputs.output_file":
            return str((self.executor_input.get("outputs") or {}).get("outputFile", ""))
        key = expr[2:]
        if key in self.job:
            return self.job[key]
        raise PlaceholderError(f"unknown placeholder {{{{{expr}}}}}")

    def substitute(self, text: str) -> str:
        """``text`` with every ``{{$...}}`` placeholder replaced."""
        return _PLACEHOLDER.sub(lambda m: self.value_of(m.group(0)[2:-2]), text)

    def expand_arg(self, arg: str) -> list[str]:
        """One command/args item expanded to zero or more argv items."""
        stripped = arg.strip()
        if stripped.startswith("{") and ('"Concat"' in stripped or '"IfPresent"' in stripped):
            try:
                structured = json.loads(stripped)
            except json.JSONDecodeError:
                structured = None
            if isinstance(structured, dict):
                return self._expand_structured(structured)
        return [self.substitute(arg)]

    def _expand_structured(self, node: Any) -> list[str]:
        if isinstance(node, str):
            return self.expand_arg(node)
        if isinstance(node, dict) and "Concat" in node:
            return ["".join("".join(self._expand_structured(part)) for part in node["Concat"])]
        if isinstance(node, dict) and "IfPresent" in node:
            spec = node["IfPresent"]
            branch = spec.get("Then") if self.is_present(spec.get("InputName", "")) else spec.get("Else")
            if branch is None:
                return []
            if not isinstance(branch, list):
                branch = [branch]
            return [item for part in branch for item in self._expand_structured(part)]
        return [json.dumps(node)]

    def expand(self, argv: list[str]) -> list[str]:
        """Every item of ``argv`` expanded and substituted."""
        return [item for arg in argv for item in self.expand_arg(arg)]


_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


def parse_parameter_text(text: str, parameter_type: str) -> Any:
    """Converts an output parameter file's text to its typed value (Go ``TextToPbValue``)."""
    if parameter_type in ("STRING", "", "PARAMETER_TYPE_ENUM_UNSPECIFIED"):
        return text
    trimmed = text.strip()
    if parameter_type == "NUMBER_INTEGER":
        return int(trimmed)
    if parameter_type == "NUMBER_DOUBLE":
        return float(trimmed)
    if parameter_type == "BOOLEAN":
        if trimmed in _TRUE:
            return True
        if trimmed in _FALSE:
            return False
        raise ValueError(f"{trimmed!r} is not a boolean")
    if parameter_type in ("LIST", "STRUCT"):
        value = json.loads(trimmed)
        want = list if parameter_type == "LIST" else dict
        if not isinstance(value, want):
            raise ValueError(f"expected a JSON {'list' if want is list else 'object'}, got {trimmed[:80]!r}")
        return value
    return text
