"""A Python function's signature as a component interface: typed inputs and outputs.

Parameters map to IR parameter types (``str`` -> ``STRING``, ``int`` -> ``NUMBER_INTEGER``,
...); ``Input[T]``/``Output[T]`` map to artifacts; a single return value is the output
``Output`` and a ``NamedTuple`` return gives one output per field. Descriptions come from
a Google-style docstring (``Args:`` and ``Returns:`` sections), as in KFP.
"""

from __future__ import annotations

import inspect
import re
import typing
from dataclasses import dataclass, field
from typing import Any

from stepwell.runtime._executor_types import (
    Artifact,
    InputPath,
    OutputPath,
    PipelineTaskFinalStatus,
    artifact_annotation,
    is_artifact_list,
)

NO_DEFAULT: Any = inspect.Parameter.empty
"""Marks an input without a default value."""

_PARAMETER_TYPES: dict[Any, str] = {
    str: "STRING",
    int: "NUMBER_INTEGER",
    float: "NUMBER_DOUBLE",
    bool: "BOOLEAN",
    list: "LIST",
    dict: "STRUCT",
}

PYTHON_TYPE_NAMES: dict[str, str] = {
    "STRING": "str",
    "NUMBER_INTEGER": "int",
    "NUMBER_DOUBLE": "float",
    "BOOLEAN": "bool",
    "LIST": "list",
    "STRUCT": "dict",
    "TASK_FINAL_STATUS": "PipelineTaskFinalStatus",
}


@dataclass
class IOSpec:
    """One input or output of a component or pipeline.

    Exactly one of ``parameter_type`` (an IR enum name such as ``NUMBER_INTEGER``) and
    ``artifact_class`` is set.
    """

    name: str
    parameter_type: str | None = None
    artifact_class: type[Artifact] | None = None
    default: Any = NO_DEFAULT
    optional: bool = False
    description: str | None = None
    is_list: bool = False
    item_type: str | None = None

    @property
    def is_artifact(self) -> bool:
        """True for an artifact, False for a parameter."""
        return self.artifact_class is not None

    @property
    def type_name(self) -> str:
        """The type as shown to people: ``int``, ``system.Dataset``, ..."""
        if self.artifact_class is not None:
            return self.artifact_class.schema_title
        return PYTHON_TYPE_NAMES.get(self.parameter_type or "", str(self.parameter_type))


@dataclass
class ComponentInterface:
    """The name, description, inputs and outputs of a component or pipeline."""

    name: str
    description: str | None = None
    inputs: dict[str, IOSpec] = field(default_factory=dict)
    outputs: dict[str, IOSpec] = field(default_factory=dict)


def parameter_type_of(annotation: Any) -> str | None:
    """The IR parameter type for a Python annotation, or None if it is not a parameter type."""
    origin = typing.get_origin(annotation)
    if origin is typing.Union or type(annotation).__name__ == "UnionType":
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        return parameter_type_of(members[0]) if len(members) == 1 else None
    if origin is typing.Annotated:
        return parameter_type_of(typing.get_args(annotation)[0])
    if origin in (list, dict):
        return _PARAMETER_TYPES[origin]
    if annotation is PipelineTaskFinalStatus:
        return "TASK_FINAL_STATUS"
    return _PARAMETER_TYPES.get(annotation)


def _is_optional(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin is typing.Union or type(annotation).__name__ == "UnionType":
        return type(None) in typing.get_args(annotation)
    return False


def _strip_optional(annotation: Any) -> Any:
    if _is_optional(annotation):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            return members[0]
    return annotation


_SECTIONS = {
    **dict.fromkeys(["args", "arguments", "parameters", "params"], "args"),
    **dict.fromkeys(["returns", "return"], "returns"),
    **{
        name: name
        for name in [
            "raises",
            "exceptions",
            "except",
            "attributes",
            "example",
            "examples",
            "yields",
            "yield",
            "note",
            "notes",
            "warning",
            "warnings",
            "see also",
            "todo",
            "other parameters",
            "references",
        ]
    },
}
"""Google-style section headers (lowercase) and the section each one starts."""


def parse_docstring(doc: str | None) -> tuple[str | None, dict[str, str], dict[str, str]]:
    """``(description, {arg: text}, {returned field: text})`` from a Google-style docstring."""
    if not doc:
        return None, {}, {}
    lines = inspect.cleandoc(doc).splitlines()
    sections: dict[str, list[str]] = {"": []}
    current = ""
    for line in lines:
        header = re.fullmatch(r"([A-Za-z]+(?: [A-Za-z]+)?):\s*", line)
        if header and header.group(1).lower() in _SECTIONS:
            current = _SECTIONS[header.group(1).lower()]
            sections.setdefault(current, [])
            continue
        sections[current].append(line)
    text = list(sections[""])
    while text and not text[-1].strip():
        text.pop()
    description: str | None = None
    if text:
        short, rest = text[0].strip(), "\n".join(text[1:]).strip()
        description = f"{short}\n{rest}" if short and rest else short or rest or None
    args = _parse_entries(sections.get("args", []))
    returns = _parse_entries(sections.get("returns", []))
    return description, args, returns


def _parse_entries(lines: list[str]) -> dict[str, str]:
    entries: dict[str, list[str]] = {}
    current: str | None = None
    indent: int | None = None
    for line in lines:
        if not line.strip():
            continue
        width = len(line) - len(line.lstrip())
        match = re.match(r"\s*(\*{0,2}\w+)(?:\s*\(.*?\))?\s*:\s*(.*)", line)
        if match and (indent is None or width <= indent):
            indent = width
            current = match.group(1).lstrip("*")
            entries[current] = [match.group(2).strip()]
        elif current is not None:
            entries[current].append(line.strip())
    # Continuation lines are kept on their own lines, as docstring_parser (used by kfp) does.
    return {name: "\n".join(p for p in parts if p).strip() for name, parts in entries.items()}


def _resolve_hints(func: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(func, include_extras=True)
    except Exception as exc:  # unresolvable forward references and the like
        raise TypeError(f"cannot resolve the type annotations of {func.__name__}: {exc}") from exc


def function_interface(func: Any, name: str, description: str | None = None) -> ComponentInterface:
    """Read the interface of a component or pipeline function.

    Raises TypeError for ``*args``/``**kwargs``, missing or unsupported annotations.
    """
    hints = _resolve_hints(func)
    doc_description, arg_docs, return_docs = parse_docstring(inspect.getdoc(func))
    interface = ComponentInterface(name=name, description=description or doc_description)
    for param in inspect.signature(func).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"{func.__name__}: *args and **kwargs are not supported in a component")
        if param.name not in hints:
            raise TypeError(f"{func.__name__}: input {param.name!r} has no type annotation")
        annotation = hints[param.name]
        spec = IOSpec(name=param.name, default=param.default, description=arg_docs.get(param.name))
        if isinstance(annotation, InputPath | OutputPath):
            _add_path_io(func, annotation, spec, interface, return_docs)
            continue
        artifact = artifact_annotation(_strip_optional(annotation))
        if artifact is not None:
            direction, spec.artifact_class = artifact
            spec.is_list = is_artifact_list(_strip_optional(annotation))
            if direction == "output":
                spec.default = NO_DEFAULT
                spec.description = return_docs.get(param.name)  # as KFP: only Returns:
                interface.outputs[param.name] = spec
                continue
            spec.optional = param.default is not NO_DEFAULT
        else:
            spec.parameter_type = parameter_type_of(annotation)
            if spec.parameter_type is None:
                raise TypeError(
                    f"{func.__name__}: input {param.name!r} has unsupported type {annotation!r}; "
                    "use str, int, float, bool, list, dict or Input[...]/Output[...] artifacts"
                )
            spec.optional = (
                param.default is not NO_DEFAULT
                or _is_optional(annotation)
                or spec.parameter_type == "TASK_FINAL_STATUS"
            )
            if param.default is None:
                spec.default = NO_DEFAULT  # optional, with no defaultValue in the IR
        interface.inputs[param.name] = spec
    _add_return_outputs(func, hints.get("return"), interface, return_docs)
    return interface


def _add_path_io(
    func: Any,
    annotation: InputPath | OutputPath,
    spec: IOSpec,
    interface: ComponentInterface,
    return_docs: dict[str, str],
) -> None:
    """``InputPath(T)``/``OutputPath(T)``: an artifact, or (for outputs) a parameter file."""
    spec.artifact_class = annotation.artifact_class
    if spec.artifact_class is None:
        spec.parameter_type = parameter_type_of(annotation.type)
        if isinstance(annotation, InputPath) or spec.parameter_type is None:
            raise TypeError(
                f"{func.__name__}: {annotation!r} for {spec.name!r} is not supported; use "
                "InputPath('Dataset') (or another artifact type) or OutputPath(str/int/...)"
            )
    if isinstance(annotation, OutputPath):
        spec.default = NO_DEFAULT
        spec.description = return_docs.get(spec.name)
        interface.outputs[spec.name] = spec
    else:
        spec.optional = spec.default is not NO_DEFAULT
        interface.inputs[spec.name] = spec


def _add_return_outputs(
    func: Any, annotation: Any, interface: ComponentInterface, docs: dict[str, str]
) -> None:
    if annotation is None or annotation is type(None):
        return
    fields = getattr(annotation, "_fields", None)
    if fields is not None:
        field_types = typing.get_type_hints(annotation, include_extras=True)
        items = [(f, field_types[f]) for f in fields]
    else:
        items = [("Output", annotation)]
    for output_name, output_type in items:
        if output_name in interface.outputs:
            raise TypeError(f"{func.__name__}: output {output_name!r} is declared twice")
        spec = IOSpec(name=output_name, description=docs.get(output_name))
        artifact = artifact_annotation(output_type)
        if artifact is not None:
            spec.artifact_class = artifact[1]
            spec.is_list = is_artifact_list(output_type)
        else:
            spec.parameter_type = parameter_type_of(output_type)
            if spec.parameter_type is None:
                raise TypeError(
                    f"{func.__name__}: return type {output_type!r} is not supported; "
                    "return str, int, float, bool, list or dict"
                )
        interface.outputs[output_name] = spec
