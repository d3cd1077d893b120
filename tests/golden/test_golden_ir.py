"""Golden pipelines: the same source compiled by kfp 2.17.3 and by stepwell gives the same IR.

Each file in ``pipelines/`` imports ``from stepwell import ...`` and defines ``TARGET``
(and optionally ``PIPELINE_PARAMETERS``). The test compiles it in-process with stepwell,
then with the import line swapped to ``kfp``, and compares the two IRs structurally:
components and their interfaces, DAG tasks, edges, inputs, trigger policies, iterators,
caching and retry options, resources and DAG outputs. Container components' command
and args must match too; only the command lines of lightweight Python components differ,
because stepwell runs them with its own in-task executor.
"""

from __future__ import annotations

import copy
import importlib.util
import itertools
import sys
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from stepwell import compiler

PIPELINES = Path(__file__).resolve().parent / "pipelines"
GOLDEN = sorted(p.stem for p in PIPELINES.glob("g*.py"))

DELIBERATE_DIFFERENCES = {
    "sdkVersion": "stepwell writes stepwell-<version>, kfp writes kfp-2.17.3",
    "lightweight command/args": (
        "Python components run `python3 -m stepwell.runtime.executor --component_source ...` "
        "as plain argv (no shell prelude, no pip install of kfp); the image, env and "
        "resources are still compared"
    ),
}
"""Differences the comparison ignores on purpose, with the reason."""

_counter = itertools.count()


def load(name: str, flavor: str, tmp_dir: Path) -> ModuleType:
    """Import ``pipelines/<name>.py``, with its ``stepwell`` imports swapped for ``flavor``."""
    text = (PIPELINES / f"{name}.py").read_text()
    if flavor == "kfp":
        text = text.replace("from stepwell import", "from kfp import").replace(
            "from stepwell.dsl import", "from kfp.dsl import"
        )
    module_name = f"golden_{flavor}_{name}_{next(_counter)}"
    target = tmp_dir / f"{module_name}.py"
    target.write_text(text.replace("Path(__file__).parent", f"Path({str(PIPELINES)!r})"))
    spec = importlib.util.spec_from_file_location(module_name, target)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # kfp's base-image notice
        spec.loader.exec_module(module)
    return module


def compile_kfp(module: ModuleType, path: Path) -> dict[str, Any]:
    from kfp import compiler as kfp_compiler

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kfp_compiler.Compiler().compile(
            module.TARGET,
            str(path),
            pipeline_parameters=getattr(module, "PIPELINE_PARAMETERS", None),
        )
    return yaml.safe_load(path.read_text())


def compile_stepwell(module: ModuleType, path: Path) -> dict[str, Any]:
    compiler.Compiler().compile(
        module.TARGET, str(path), pipeline_parameters=getattr(module, "PIPELINE_PARAMETERS", None)
    )
    return yaml.safe_load(path.read_text())


def _is_lightweight(container: dict[str, Any]) -> bool:
    line = " ".join(container.get("command", []) + container.get("args", []))
    return "kfp.dsl.executor_main" in line or "stepwell.runtime.executor" in line


def comparable(spec: dict[str, Any]) -> dict[str, Any]:
    """The IR minus the deliberate differences."""
    spec = copy.deepcopy(spec)
    spec.pop("sdkVersion")
    for executor in spec["deploymentSpec"]["executors"].values():
        container = executor.get("container")
        if container and _is_lightweight(container):
            container.pop("command", None)
            container.pop("args", None)
    return spec


@pytest.fixture(scope="module")
def tmp_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("golden")


@pytest.mark.parametrize("name", GOLDEN)
def test_same_ir_as_kfp(name: str, tmp_dir: Path) -> None:
    expected = compile_kfp(load(name, "kfp", tmp_dir), tmp_dir / f"{name}.kfp.yaml")
    ours = compile_stepwell(load(name, "stepwell", tmp_dir), tmp_dir / f"{name}.yaml")
    # Compared as YAML text so that a failure shows a readable line diff.
    assert yaml.safe_dump(comparable(ours)) == yaml.safe_dump(comparable(expected))


@pytest.mark.parametrize("name", GOLDEN)
def test_parses_with_kfp_and_is_deterministic(name: str, tmp_dir: Path) -> None:
    first = tmp_dir / f"{name}.a.yaml"
    second = tmp_dir / f"{name}.b.yaml"
    ours = compile_stepwell(load(name, "stepwell", tmp_dir), first)
    compile_stepwell(load(name, "stepwell", tmp_dir), second)
    assert first.read_bytes() == second.read_bytes()
    message = json_format.ParseDict(ours, pipeline_spec_pb2.PipelineSpec())
    assert message.schema_version == "2.1.0"
    assert json_format.MessageToDict(message) == ours


def test_there_are_enough_golden_pipelines() -> None:
    assert len(GOLDEN) >= 25
