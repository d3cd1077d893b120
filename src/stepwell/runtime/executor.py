"""The in-task executor for Stepwell lightweight Python components.

Run as::

    python3 -m stepwell.runtime.executor --component_source SRC \\
        --executor_input JSON --function_to_execute FN [--packages_to_install JSON_LIST]

It execs the component's source in a fresh module, builds the function's arguments from
the ExecutorInput (KFP's camelCase JSON), calls it, checks the returned value against the
annotation and writes ExecutorOutput JSON to ``outputs.outputFile``. Unknown flags are
ignored. An exception in user code prints its traceback and exits with status 1 without
writing the output file.

The component source starts with ``from stepwell.runtime.executor import *``, which gives
it the artifact classes, ``Input``/``Output`` and a small ``dsl`` namespace holding the
same names (so ``dsl.Output[dsl.Dataset]`` annotations work too). This module imports only
the standard library and ``stepwell.runtime`` so that a task starts fast.
"""

from __future__ import annotations

import json
import os
import sys
import typing
from collections.abc import Callable, Sequence
from typing import Any

from stepwell.runtime._executor_types import (
    HTML,
    Artifact,
    ClassificationMetrics,
    Dataset,
    Input,
    InputPath,
    Markdown,
    Metrics,
    Model,
    Output,
    OutputPath,
    PipelineTaskFinalStatus,
    SlicedClassificationMetrics,
    artifact_annotation,
    is_artifact_list,
)

__all__ = [
    "HTML",
    "Artifact",
    "ClassificationMetrics",
    "Dataset",
    "Input",
    "InputPath",
    "Markdown",
    "Metrics",
    "Model",
    "Output",
    "OutputPath",
    "PipelineTaskFinalStatus",
    "SlicedClassificationMetrics",
    "dsl",
]


class _DslNamespace:
    """``dsl`` inside a task: the runtime names, so ``dsl.Input[dsl.Dataset]`` resolves."""

    Artifact = Artifact
    Dataset = Dataset
    Model = Model
    Metrics = Metrics
    ClassificationMetrics = ClassificationMetrics
    SlicedClassificationMetrics = SlicedClassificationMetrics
    HTML = HTML
    Markdown = Markdown
    Input = Input
    Output = Output
    InputPath = InputPath
    OutputPath = OutputPath
    PipelineTaskFinalStatus = PipelineTaskFinalStatus


dsl = _DslNamespace()

USAGE = (
    "usage: python -m stepwell.runtime.executor --component_source SRC "
    "--executor_input JSON --function_to_execute FN [--packages_to_install JSON_LIST "
    "[--pip_index_urls JSON_LIST]]"
)
_FLAGS = (
    "component_source",
    "executor_input",
    "function_to_execute",
    "packages_to_install",
    "pip_index_urls",
)
_COMPONENT_MODULE = "stepwell_component"


class ExecutorError(Exception):
    """A problem with the component's contract (not an exception raised by user code)."""


def parse_args(argv: Sequence[str]) -> dict[str, str]:
    """Read ``--flag value`` and ``--flag=value`` pairs; unknown flags are skipped."""
    values: dict[str, str] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if not arg.startswith("--"):
            continue
        key, eq, inline = arg[2:].partition("=")
        if eq:
            value = inline
        elif i < len(argv):
            value = argv[i]
            i += 1
        else:
            value = ""
        if key in _FLAGS:
            values[key] = value
    return values


def load_function(source: str, function_name: str) -> Callable[..., Any]:
    """Exec ``source`` in a fresh module and return its function ``function_name``."""
    import linecache
    import types

    filename = f"<stepwell component {function_name}>"
    # Let tracebacks show the component's source lines.
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    module = types.ModuleType(_COMPONENT_MODULE)
    module.__file__ = filename
    sys.modules[_COMPONENT_MODULE] = module
    exec(compile(source, filename, "exec"), module.__dict__)
    func = module.__dict__.get(function_name)
    if not callable(func):
        raise ExecutorError(f"the component source defines no function named {function_name!r}")
    return typing.cast(Callable[..., Any], func)


def _type_hints(func: Callable[..., Any]) -> dict[str, Any]:
    return typing.get_type_hints(func, include_extras=True)


def _make_artifact(cls: type[Artifact], entry: dict[str, Any]) -> Artifact:
    artifact = cls(
        name=entry.get("name", ""),
        uri=entry.get("uri", ""),
        metadata=entry.get("metadata") or {},
    )
    custom = entry.get("customPath", entry.get("custom_path"))
    if custom:
        artifact.custom_path = custom
    return artifact


def _coerce_parameter(value: Any, annotation: Any) -> Any:
    # Numbers may arrive as whole doubles (``3.0``) from an IR that stores every number as
    # a double; give the function the type it declares.
    if annotation is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def build_arguments(
    func: Callable[..., Any], executor_input: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Artifact]]:
    """The keyword arguments for ``func``, and the output artifacts among them by name."""
    hints = _type_hints(func)
    code = func.__code__
    names = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
    inputs = executor_input.get("inputs") or {}
    outputs = executor_input.get("outputs") or {}
    parameter_values = inputs.get("parameterValues") or {}
    input_artifacts = inputs.get("artifacts") or {}
    output_artifacts = outputs.get("artifacts") or {}

    kwargs: dict[str, Any] = {}
    produced: dict[str, Artifact] = {}
    for name in names:
        annotation = hints.get(name)
        if isinstance(annotation, InputPath | OutputPath):
            kwargs[name] = _path_argument(name, annotation, inputs, outputs, produced)
            continue
        if annotation is PipelineTaskFinalStatus:
            value = parameter_values.get(name)
            if value is not None:
                kwargs[name] = PipelineTaskFinalStatus.from_value(value)
            continue
        artifact = artifact_annotation(annotation)
        if artifact is None:
            value = parameter_values.get(name)
            if value is not None:  # missing or null: the Python default applies
                kwargs[name] = _coerce_parameter(value, annotation)
            continue
        direction, cls = artifact
        source = input_artifacts if direction == "input" else output_artifacts
        entries = (source.get(name) or {}).get("artifacts") or []
        if is_artifact_list(annotation) and direction == "input":
            kwargs[name] = [_make_artifact(cls, entry) for entry in entries]
            continue
        if not entries:
            if direction == "output":
                raise ExecutorError(f"the executor input provides no output artifact {name!r}")
            continue  # an optional input artifact that was not passed
        obj = _make_artifact(cls, entries[0])
        if direction == "output":
            os.makedirs(os.path.dirname(obj.path) or ".", exist_ok=True)
            produced[name] = obj
        kwargs[name] = obj
    return kwargs, produced


def _path_argument(
    name: str,
    annotation: InputPath | OutputPath,
    inputs: dict[str, Any],
    outputs: dict[str, Any],
    produced: dict[str, Artifact],
) -> str:
    """The local path given for an ``InputPath``/``OutputPath`` parameter."""
    if isinstance(annotation, OutputPath) and annotation.artifact_class is None:
        path = ((outputs.get("parameters") or {}).get(name) or {}).get("outputFile")
        if not path:
            raise ExecutorError(f"the executor input provides no output parameter file {name!r}")
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        return str(path)
    cls = annotation.artifact_class or Artifact
    source = inputs if isinstance(annotation, InputPath) else outputs
    entries = ((source.get("artifacts") or {}).get(name) or {}).get("artifacts") or []
    if not entries:
        raise ExecutorError(f"the executor input provides no artifact {name!r}")
    artifact = _make_artifact(cls, entries[0])
    if isinstance(annotation, OutputPath):
        os.makedirs(os.path.dirname(artifact.path) or ".", exist_ok=True)
        produced[name] = artifact
    return artifact.path


_JSON_TYPES: dict[Any, tuple[type, ...]] = {
    str: (str,),
    int: (int,),
    float: (float, int),
    bool: (bool,),
    list: (list,),
    dict: (dict,),
}


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation)


def check_return_type(function_name: str, value: Any, annotation: Any) -> None:
    """Raise ExecutorError when ``value`` does not match the declared return annotation."""
    origin = typing.get_origin(annotation) or annotation
    allowed = _JSON_TYPES.get(origin)
    if allowed is None:
        return  # an annotation we cannot check (e.g. typing.Any)
    ok = isinstance(value, allowed)
    if ok and origin is not bool and isinstance(value, bool):
        ok = False  # bool is a subclass of int, but not an integer parameter
    if not ok:
        raise ExecutorError(
            f"function {function_name} returned a value of type {type(value).__name__}; "
            f"it declares {_type_name(origin)}. Return a {_type_name(origin)} (for example "
            f"{_type_name(origin)}(value)) or change the return annotation"
        )


def collect_outputs(
    func: Callable[..., Any], result: Any, produced: dict[str, Artifact]
) -> dict[str, Any]:
    """The ExecutorOutput dict for the function's return value and output artifacts."""
    name = func.__name__
    annotation = _type_hints(func).get("return")
    parameters: dict[str, Any] = {}
    if annotation is not None and annotation is not type(None):
        fields = getattr(annotation, "_fields", None)
        if fields is not None:  # a NamedTuple: one output per field
            field_types = typing.get_type_hints(annotation)
            for field in fields:
                value = getattr(result, field)
                check_return_type(name, value, field_types.get(field))
                parameters[field] = value
        else:
            check_return_type(name, result, annotation)
            parameters["Output"] = result
    output: dict[str, Any] = {}
    if parameters:
        output["parameterValues"] = parameters
    if produced:
        artifacts: dict[str, Any] = {}
        for key, artifact in produced.items():
            entry: dict[str, Any] = {
                "name": artifact.name,
                "uri": artifact.uri,
                "metadata": artifact.metadata,
            }
            if artifact.custom_path is not None:
                entry["custom_path"] = artifact.custom_path
            artifacts[key] = {"artifacts": [entry]}
        output["artifacts"] = artifacts
    return output


def install_packages(packages: list[str], index_urls: list[str] | None = None) -> list[str]:
    """``pip install`` the requirements that are not installed already; returns those.

    The first of ``index_urls`` is pip's index and the others extra indexes, each also
    trusted (as KFP's prelude does). A requirement counts as installed when a
    distribution of that name exists (its version is not checked).
    """
    import importlib.metadata
    import re
    import subprocess

    missing = []
    for requirement in packages:
        dist = re.split(r"[\s<>=!~;\[@]", requirement.strip(), maxsplit=1)[0]
        try:
            importlib.metadata.distribution(dist)
        except importlib.metadata.PackageNotFoundError:
            missing.append(requirement)
    if missing:
        index_options: list[str] = []
        for i, url in enumerate(index_urls or []):
            index_options += ["--index-url" if i == 0 else "--extra-index-url", url]
            host = re.sub(r"^[a-z]+://([^/:]+).*$", r"\1", url)
            index_options += ["--trusted-host", host]
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-warn-script-location",
                "--disable-pip-version-check",
                *index_options,
                *missing,
            ],
            check=True,
        )
    return missing


def execute(source: str, function_name: str, executor_input: dict[str, Any]) -> dict[str, Any]:
    """Run the component and write its ExecutorOutput; return that output."""
    func = load_function(source, function_name)
    kwargs, produced = build_arguments(func, executor_input)
    result = func(**kwargs)
    output = collect_outputs(func, result, produced)
    output_file = (executor_input.get("outputs") or {}).get("outputFile")
    if output_file:
        os.makedirs(os.path.dirname(output_file) or ".", exist_ok=True)
        with open(output_file, "w", encoding="utf-8") as f:
            json.dump(output, f)
    return output


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the process exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "-h" in argv or "--help" in argv:
        print(USAGE)
        return 0
    args = parse_args(argv)
    missing = [flag for flag in _FLAGS[:3] if flag not in args]
    if missing:
        print(f"{USAGE}\nerror: missing --{', --'.join(missing)}", file=sys.stderr)
        return 2
    try:
        executor_input = json.loads(args["executor_input"])
    except json.JSONDecodeError as exc:
        print(f"error: --executor_input is not valid JSON: {exc}", file=sys.stderr)
        return 2
    try:
        if args.get("packages_to_install"):
            install_packages(
                json.loads(args["packages_to_install"]),
                json.loads(args.get("pip_index_urls") or "[]"),
            )
        execute(args["component_source"], args["function_to_execute"], executor_input)
    except ExecutorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception:
        import traceback

        traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
