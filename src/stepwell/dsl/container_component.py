"""``@dsl.container_component``: a component that runs a container command.

The decorated function is called once, when decorated, with placeholders in place of
its inputs and outputs; it returns a ``dsl.ContainerSpec`` whose command and args
mention them. The IR gets the image, command and args with the placeholders written as
KFP writes them.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from stepwell.dsl.base_component import BaseComponent
from stepwell.dsl.interface import function_interface
from stepwell.dsl.placeholders import (
    InputArtifactPlaceholders,
    InputPathPlaceholder,
    InputValuePlaceholder,
    OutputArtifactPlaceholders,
    OutputParameterPlaceholder,
    OutputPathPlaceholder,
    render,
)
from stepwell.runtime._executor_types import InputPath, OutputPath


@dataclass
class ContainerSpec:
    """The container a component runs: image, command (entrypoint) and args."""

    image: str
    command: list[Any] | None = None
    args: list[Any] | None = field(default=None)

    def to_ir(self) -> dict[str, Any]:
        """The IR ``container`` executor spec."""
        spec: dict[str, Any] = {"image": self.image}
        if self.command:
            spec["command"] = [render(v) for v in self.command]
        if self.args:
            spec["args"] = [render(v) for v in self.args]
        return spec


class ContainerComponent(BaseComponent):
    """A component made with ``@dsl.container_component``."""

    def __init__(self, func: Callable[..., Any]) -> None:
        if not inspect.isfunction(func):
            raise TypeError(f"@dsl.container_component decorates a function, not {func!r}")
        self.python_func = func
        self.name = func.__name__
        self.interface = function_interface(func, self.name)
        self.description = self.interface.description
        hints = inspect.signature(func).parameters
        arguments: dict[str, Any] = {}
        for name in hints:
            arguments[name] = self._placeholder(func, name)
        spec = func(**arguments)
        if not isinstance(spec, ContainerSpec):
            raise TypeError(
                f"container component {self.name!r} must return dsl.ContainerSpec(...), "
                f"not {spec!r}"
            )
        self.spec = spec
        self._container = spec.to_ir()
        functools.update_wrapper(self, func)

    def _placeholder(self, func: Callable[..., Any], name: str) -> Any:
        annotation = typing.get_type_hints(func, include_extras=True).get(name)
        if name in self.interface.outputs:
            spec = self.interface.outputs[name]
            if spec.artifact_class is None:
                return OutputParameterPlaceholder(name)
            if isinstance(annotation, OutputPath):
                return OutputPathPlaceholder(name)
            return OutputArtifactPlaceholders(name)
        spec = self.interface.inputs[name]
        if spec.artifact_class is not None:
            if isinstance(annotation, InputPath):
                return InputPathPlaceholder(name)
            return InputArtifactPlaceholders(name)
        return InputValuePlaceholder(name)

    def container_spec(self) -> dict[str, Any]:
        """The IR ``container`` executor spec (a fresh copy)."""
        return {k: list(v) if isinstance(v, list) else v for k, v in self._container.items()}


def container_component(func: Callable[..., Any]) -> ContainerComponent:
    """Make a component that runs ``dsl.ContainerSpec(image, command, args)``."""
    return ContainerComponent(func)
