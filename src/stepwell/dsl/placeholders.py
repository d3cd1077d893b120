"""Placeholders in a container component's command and args, resolved when the task runs.

Simple placeholders are strings such as ``{{$.inputs.parameters['x']}}``; the
structured ones (``ConcatPlaceholder``, ``IfPresentPlaceholder``) are written as JSON
strings (``{"Concat": [...]}``, ``{"IfPresent": {...}}``) exactly as KFP writes them.
"""

from __future__ import annotations

import json
from typing import Any


class Placeholder:
    """A value known only when the task runs."""

    def to_ir(self) -> Any:
        """This placeholder inside a structured placeholder (a string or a dict)."""
        return str(self)

    def __format__(self, spec: str) -> str:
        return str(self)


class _Simple(Placeholder):
    template = ""

    def __init__(self, name: str) -> None:
        self.name = name

    def __str__(self) -> str:
        return self.template.format(name=self.name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class InputValuePlaceholder(_Simple):
    """The value of an input parameter."""

    template = "{{{{$.inputs.parameters['{name}']}}}}"


class InputPathPlaceholder(_Simple):
    """The local path of an input artifact."""

    template = "{{{{$.inputs.artifacts['{name}'].path}}}}"


class InputUriPlaceholder(_Simple):
    """The URI of an input artifact."""

    template = "{{{{$.inputs.artifacts['{name}'].uri}}}}"


class InputMetadataPlaceholder(_Simple):
    """The metadata of an input artifact, as JSON."""

    template = "{{{{$.inputs.artifacts['{name}'].metadata}}}}"


class OutputPathPlaceholder(_Simple):
    """Where the task writes an output artifact."""

    template = "{{{{$.outputs.artifacts['{name}'].path}}}}"


class OutputUriPlaceholder(_Simple):
    """The URI of an output artifact."""

    template = "{{{{$.outputs.artifacts['{name}'].uri}}}}"


class OutputMetadataPlaceholder(_Simple):
    """The metadata of an output artifact."""

    template = "{{{{$.outputs.artifacts['{name}'].metadata}}}}"


class OutputParameterPlaceholder(_Simple):
    """The file the task writes an output parameter to."""

    template = "{{{{$.outputs.parameters['{name}'].output_file}}}}"


def _item(value: Any) -> Any:
    if isinstance(value, Placeholder):
        return value.to_ir()
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    raise TypeError(f"{value!r} cannot be used in a container command; use strings or placeholders")


class ConcatPlaceholder(Placeholder):
    """The strings and placeholders in ``items``, joined into one argument."""

    def __init__(self, items: list[Any]) -> None:
        if not isinstance(items, list):
            raise TypeError("ConcatPlaceholder takes a list of strings and placeholders")
        self.items = items

    def to_ir(self) -> Any:
        return {"Concat": [_item(i) for i in self.items]}

    def __str__(self) -> str:
        return json.dumps(self.to_ir())


class IfPresentPlaceholder(Placeholder):
    """``then`` when the optional input ``input_name`` was passed, else ``else_``."""

    def __init__(self, input_name: str, then: Any, else_: Any | None = None) -> None:
        self.input_name = input_name
        self.then = then if isinstance(then, list) else [then]
        self.else_ = None if else_ is None else (else_ if isinstance(else_, list) else [else_])

    def to_ir(self) -> Any:
        body: dict[str, Any] = {"InputName": self.input_name, "Then": [_item(i) for i in self.then]}
        if self.else_ is not None:
            body["Else"] = [_item(i) for i in self.else_]
        return {"IfPresent": body}

    def __str__(self) -> str:
        return json.dumps(self.to_ir())


class InputArtifactPlaceholders:
    """What a container component sees for an input artifact: ``.path``, ``.uri``, ``.metadata``."""

    def __init__(self, name: str) -> None:
        self.path = InputPathPlaceholder(name)
        self.uri = InputUriPlaceholder(name)
        self.metadata = InputMetadataPlaceholder(name)


class OutputArtifactPlaceholders:
    """What a container component sees for an output artifact: ``.path``, ``.uri``, ``.metadata``."""

    def __init__(self, name: str) -> None:
        self.path = OutputPathPlaceholder(name)
        self.uri = OutputUriPlaceholder(name)
        self.metadata = OutputMetadataPlaceholder(name)


def render(value: Any) -> str:
    """One command-line item as the IR writes it."""
    if isinstance(value, Placeholder):
        return str(value)
    if isinstance(value, InputArtifactPlaceholders | OutputArtifactPlaceholders):
        raise TypeError("pass an artifact's .path or .uri to the command, not the artifact itself")
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    raise TypeError(f"{value!r} cannot be used in a container command; use strings or placeholders")
