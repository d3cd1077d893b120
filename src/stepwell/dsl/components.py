"""``@dsl.component``: lightweight Python components.

The decorated function's source (decorators stripped) becomes the task's program. It runs
as ``python3 -m stepwell.runtime.executor --component_source <source> --executor_input
{{$}} --function_to_execute <name>``: argv only, no shell. The source is prefixed with
imports from ``stepwell.runtime`` (never ``stepwell.dsl``), so the task needs only the
standard library and ``stepwell.runtime``; the function must import anything else itself.
"""

from __future__ import annotations

import ast
import functools
import inspect
import json
import textwrap
from collections.abc import Callable
from typing import Any, TypeVar, overload

from stepwell.dsl.graph import current_graph
from stepwell.dsl.interface import ComponentInterface, function_interface
from stepwell.dsl.tasks import PipelineTask, sanitize_name

DEFAULT_BASE_IMAGE = "python:3.11"
EXECUTOR_MODULE = "stepwell.runtime.executor"
SOURCE_PRELUDE = f"from typing import *\n\nfrom {EXECUTOR_MODULE} import *\n\n"

F = TypeVar("F", bound=Callable[..., Any])


def component_source(func: Callable[..., Any]) -> str:
    """The self-contained program text for ``func``: the runtime imports, then its ``def``."""
    try:
        source = textwrap.dedent(inspect.getsource(func))
    except (OSError, TypeError) as exc:
        raise TypeError(
            f"cannot read the source of {func.__name__}; components must be defined in a file"
        ) from exc
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == func.__name__:
            body = "\n".join(source.splitlines()[node.lineno - 1 :])
            return f"{SOURCE_PRELUDE}{body}\n"
    raise TypeError(f"cannot find the definition of {func.__name__} in its source")


class PythonComponent:
    """A component made from a Python function; call it in a pipeline to create a task."""

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        base_image: str | None = None,
        packages_to_install: list[str] | None = None,
    ) -> None:
        if not inspect.isfunction(func):
            raise TypeError(f"@dsl.component decorates a function, not {func!r}")
        self.python_func = func
        self.name = func.__name__
        self.interface: ComponentInterface = function_interface(func, self.name)
        self.description = self.interface.description
        self.base_image = base_image or DEFAULT_BASE_IMAGE
        self.packages_to_install = list(packages_to_install or [])
        self.source = component_source(func)
        functools.update_wrapper(self, func)

    @property
    def pipeline_spec_name(self) -> str:
        """The pipeline name used when this component is compiled on its own."""
        return sanitize_name(self.name)

    def container_spec(self) -> dict[str, Any]:
        """The IR ``container`` executor spec that runs this component."""
        command = ["python3", "-m", EXECUTOR_MODULE, "--component_source", self.source]
        if self.packages_to_install:
            command += ["--packages_to_install", json.dumps(self.packages_to_install)]
        return {
            "image": self.base_image,
            "command": command,
            "args": [
                "--executor_input",
                "{{$}}",
                "--function_to_execute",
                self.python_func.__name__,
            ],
        }

    def __call__(self, *args: Any, **kwargs: Any) -> PipelineTask:
        if args:
            raise TypeError(
                f"component {self.name!r} takes keyword arguments only; got {len(args)} "
                f"positional argument(s). Call it as {self.name}("
                + ", ".join(f"{n}=..." for n in self.interface.inputs)
                + ")"
            )
        graph = current_graph()
        if graph is None:
            raise RuntimeError(
                f"component {self.name!r} was called outside a pipeline; call components "
                "inside a @dsl.pipeline function"
            )
        return graph.add_task(self, kwargs)

    def __repr__(self) -> str:
        return f"<stepwell component {self.name}>"


@overload
def component(func: F, /) -> PythonComponent: ...


@overload
def component(
    *,
    base_image: str | None = None,
    packages_to_install: list[str] | None = None,
) -> Callable[[Callable[..., Any]], PythonComponent]: ...


def component(
    func: Callable[..., Any] | None = None,
    *,
    base_image: str | None = None,
    packages_to_install: list[str] | None = None,
) -> PythonComponent | Callable[[Callable[..., Any]], PythonComponent]:
    """Make a lightweight Python component from a function.

    Use bare (``@dsl.component``) or with options
    (``@dsl.component(base_image="python:3.12", packages_to_install=["pandas"])``).
    Parameters are typed ``str``, ``int``, ``float``, ``bool``, ``list`` or ``dict``;
    artifacts are ``Input[T]``/``Output[T]``; a returned value is the output ``Output``.
    """

    def decorate(f: Callable[..., Any]) -> PythonComponent:
        return PythonComponent(f, base_image=base_image, packages_to_install=packages_to_install)

    if func is not None:
        return decorate(func)
    return decorate


def is_component(obj: Any) -> bool:
    """True if ``obj`` was made with ``@dsl.component``."""
    return isinstance(obj, PythonComponent)
