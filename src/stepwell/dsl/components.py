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

from stepwell.dsl.base_component import BaseComponent
from stepwell.dsl.interface import ComponentInterface, function_interface

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


class PythonComponent(BaseComponent):
    """A component made from a Python function; call it in a pipeline to create a task."""

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        base_image: str | None = None,
        packages_to_install: list[str] | None = None,
        pip_index_urls: list[str] | None = None,
        target_image: str | None = None,
        install_kfp_package: bool = True,
    ) -> None:
        if not inspect.isfunction(func):
            raise TypeError(f"@dsl.component decorates a function, not {func!r}")
        self.python_func = func
        self.name = func.__name__
        self.interface: ComponentInterface = function_interface(func, self.name)
        self.description = self.interface.description
        self.base_image = base_image or DEFAULT_BASE_IMAGE
        self.packages_to_install = list(packages_to_install or [])
        self.pip_index_urls = list(pip_index_urls or [])
        self.target_image = target_image
        self.install_kfp_package = install_kfp_package
        self.source = component_source(func)
        functools.update_wrapper(self, func)

    def container_spec(self) -> dict[str, Any]:
        """The IR ``container`` executor spec that runs this component."""
        command = ["python3", "-m", EXECUTOR_MODULE, "--component_source", self.source]
        if self.packages_to_install:
            command += ["--packages_to_install", json.dumps(self.packages_to_install)]
            if self.pip_index_urls:
                command += ["--pip_index_urls", json.dumps(self.pip_index_urls)]
        return {
            "image": self.target_image or self.base_image,
            "command": command,
            "args": [
                "--executor_input",
                "{{$}}",
                "--function_to_execute",
                self.python_func.__name__,
            ],
        }


@overload
def component(func: F, /) -> PythonComponent: ...


@overload
def component(
    *,
    base_image: str | None = None,
    packages_to_install: list[str] | None = None,
    pip_index_urls: list[str] | None = None,
    target_image: str | None = None,
    install_kfp_package: bool = True,
    **kwargs: Any,
) -> Callable[[Callable[..., Any]], PythonComponent]: ...


def component(
    func: Callable[..., Any] | None = None,
    *,
    base_image: str | None = None,
    packages_to_install: list[str] | None = None,
    pip_index_urls: list[str] | None = None,
    target_image: str | None = None,
    install_kfp_package: bool = True,
    **kwargs: Any,
) -> PythonComponent | Callable[[Callable[..., Any]], PythonComponent]:
    """Make a lightweight Python component from a function.

    Use bare (``@dsl.component``) or with options
    (``@dsl.component(base_image="python:3.12", packages_to_install=["pandas"])``).
    Parameters are typed ``str``, ``int``, ``float``, ``bool``, ``list`` or ``dict``;
    artifacts are ``Input[T]``/``Output[T]``; a returned value is the output ``Output``.
    ``packages_to_install`` are pip-installed in the task when missing, from
    ``pip_index_urls`` if given. ``target_image`` replaces the base image (the source is
    still shipped in the command, so no image build is needed). ``install_kfp_package``
    is accepted for compatibility: the image must provide ``stepwell.runtime``.
    Other KFP options (``output_component_file``, ``kfp_package_path``, ``use_venv``)
    are accepted and ignored.
    """
    ignored = set(kwargs) - {"output_component_file", "kfp_package_path", "use_venv"}
    if ignored:
        raise TypeError(f"@dsl.component got unexpected option(s): {', '.join(sorted(ignored))}")

    def decorate(f: Callable[..., Any]) -> PythonComponent:
        return PythonComponent(
            f,
            base_image=base_image,
            packages_to_install=packages_to_install,
            pip_index_urls=pip_index_urls,
            target_image=target_image,
            install_kfp_package=install_kfp_package,
        )

    if func is not None:
        return decorate(func)
    return decorate


def is_component(obj: Any) -> bool:
    """True if ``obj`` is a component (``@dsl.component``, a container or loaded component)."""
    return isinstance(obj, BaseComponent) and not isinstance(obj, _pipeline_class())


def _pipeline_class() -> type:
    from stepwell.dsl.pipelines import Pipeline

    return Pipeline
