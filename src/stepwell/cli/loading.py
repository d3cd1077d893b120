"""Turning the FILE a user names into a pipeline spec: a ``.py`` file or a compiled spec."""

from __future__ import annotations

import importlib.util
import sys
import uuid
from pathlib import Path
from typing import Any

from stepwell.errors import InvalidArgument


def load_pipeline_file(path: str, pipeline: str | None = None) -> dict[str, Any]:
    """The IR of the pipeline in ``path``.

    A ``.py`` file is imported and searched for ``@dsl.pipeline`` objects; ``pipeline``
    (a function name or a pipeline name) picks one when there are several. A ``.yaml``,
    ``.yml`` or ``.json`` file is read as a compiled spec. Raises :class:`InvalidArgument`.
    """
    file = Path(path)
    if not file.is_file():
        raise InvalidArgument(f"cannot read {path!r}: no such file")
    if file.suffix == ".py":
        return _from_python(file, pipeline)
    if file.suffix in (".yaml", ".yml", ".json"):
        from stepwell.client import pipeline_spec_from_file

        return pipeline_spec_from_file(file)
    raise InvalidArgument(f"cannot run {path!r}: expected a .py file with a @dsl.pipeline or a compiled .yaml/.json spec")


def pipelines_in(module: Any) -> dict[str, Any]:
    """The pipeline objects defined in ``module``, by function name."""
    from stepwell import dsl

    found = {}
    for attr, value in vars(module).items():
        if dsl.is_pipeline(value):
            found[getattr(value.python_func, "__name__", attr)] = value
    return found


def find_pipeline(path: str, pipeline: str | None = None) -> Any:
    """The ``@dsl.pipeline`` object defined in the ``.py`` file at ``path``.

    ``pipeline`` (a function name or a pipeline name) picks one when there are several.
    """
    file = Path(path)
    if not file.is_file():
        raise InvalidArgument(f"cannot read {path!r}: no such file")
    if file.suffix != ".py":
        raise InvalidArgument(f"{path!r} is not a .py file")
    module_name = f"_stepwell_user_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(module_name, file)
    if spec is None or spec.loader is None:
        raise InvalidArgument(f"cannot import {str(file)!r}")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(file.parent.resolve()))
    try:
        spec.loader.exec_module(module)
    except InvalidArgument:
        raise
    except Exception as err:
        raise InvalidArgument(f"importing {str(file)!r} failed: {type(err).__name__}: {err}") from err
    finally:
        sys.path.pop(0)
    found = pipelines_in(module)
    if not found:
        raise InvalidArgument(f"{str(file)!r} defines no @dsl.pipeline")
    if pipeline is not None:
        chosen = [p for fn, p in found.items() if pipeline in (fn, p.pipeline_spec_name)]
        if not chosen:
            names = ", ".join(sorted(found))
            raise InvalidArgument(f"{str(file)!r} has no pipeline named {pipeline!r}; it has {names}")
        obj = chosen[0]
    elif len(found) > 1:
        names = ", ".join(sorted(found))
        raise InvalidArgument(f"{str(file)!r} defines several pipelines ({names}); pick one with --pipeline NAME")
    else:
        obj = next(iter(found.values()))
    return obj


def _from_python(file: Path, pipeline: str | None) -> dict[str, Any]:
    obj = find_pipeline(str(file), pipeline)
    from stepwell import compiler

    try:
        return compiler.compile_to_dict(obj)
    except (TypeError, ValueError) as err:
        raise InvalidArgument(f"compiling pipeline {obj.pipeline_spec_name!r} failed: {err}") from err
