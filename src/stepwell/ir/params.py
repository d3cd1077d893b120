"""Checking run parameters against a pipeline's declared inputs.

KFP's API server refuses unknown parameters, parameters of the wrong JSON type and
missing required ones; Stepwell does the same, in every door (gRPC, REST, CLI, SDK),
and fills defaults. Whole-number values of integer parameters become ``int`` because
clients (and the IR itself) carry every number as a double.
"""

from __future__ import annotations

import json
import math
from typing import Any

from stepwell.errors import InvalidArgument

_JSON_KIND = {
    "NUMBER_INTEGER": "an integer",
    "NUMBER_DOUBLE": "a number",
    "STRING": "a string",
    "BOOLEAN": "a boolean (true or false)",
    "LIST": "a list",
    "STRUCT": "an object",
}


def integral(value: Any) -> Any:
    """``value`` with whole-number floats turned into ints, inside lists and dicts too."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [integral(v) for v in value]
    if isinstance(value, dict):
        return {k: integral(v) for k, v in value.items()}
    return value


def coerce_parameter(name: str, declared_type: str, value: Any) -> Any:
    """Checks one value against its declared IR type and returns it in canonical form."""
    ok: bool
    if declared_type == "NUMBER_INTEGER":
        ok = (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and math.isfinite(value) and value.is_integer()
        )
        if ok:
            return int(value)
    elif declared_type == "NUMBER_DOUBLE":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif declared_type == "STRING":
        ok = isinstance(value, str)
    elif declared_type == "BOOLEAN":
        ok = isinstance(value, bool)
    elif declared_type == "LIST":
        ok = isinstance(value, list)
    elif declared_type == "STRUCT":
        ok = isinstance(value, dict)
    elif declared_type == "TASK_FINAL_STATUS":
        raise InvalidArgument(f"parameter {name!r} is a task final status and cannot be set for a run")
    else:
        return value
    if not ok:
        raise InvalidArgument(
            f"parameter {name!r} must be {_JSON_KIND[declared_type]} ({declared_type}); "
            f"got {json.dumps(value)} ({type(value).__name__})"
        )
    return integral(value) if declared_type in ("LIST", "STRUCT") else value


def resolve_parameters(declared: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """Checks ``given`` against ``declared`` (root ``inputDefinitions.parameters``) and fills defaults.

    Returns every declared parameter that has a value; optional parameters without a
    value or default are left out. Raises :class:`InvalidArgument` naming the parameter.
    """
    unknown = sorted(set(given) - set(declared))
    if unknown:
        known = ", ".join(sorted(declared)) or "none"
        raise InvalidArgument(
            f"unknown parameter(s) {', '.join(map(repr, unknown))}: the pipeline declares {known}"
        )
    resolved: dict[str, Any] = {}
    for name, spec in sorted(declared.items()):
        declared_type = spec.get("parameterType", "")
        if name in given and given[name] is not None:
            resolved[name] = coerce_parameter(name, declared_type, given[name])
        elif "defaultValue" in spec:
            resolved[name] = coerce_parameter(name, declared_type, spec["defaultValue"])
        elif spec.get("isOptional"):
            continue
        else:
            raise InvalidArgument(
                f"parameter {name!r} ({declared_type}) is required: it has no default and no value was given"
            )
    return resolved


def parse_cli_value(text: str, declared_type: str | None = None) -> Any:
    """Reads a command-line ``NAME=VALUE`` value: JSON when it parses, else the raw string.

    For a STRING parameter the raw text is kept as it is (so ``-p tag=007`` stays
    ``"007"``), unless it is a quoted JSON string.
    """
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, ValueError):
        return text
    if declared_type == "STRING" and not isinstance(value, str):
        return text
    return value
