"""The same pipeline source compiles to the same IR with stepwell and with kfp 2.17.3."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml

from stepwell import compiler

PIPELINE_FILES = ["three_step", "returns_output", "defaults", "single_component", "artifact_input"]


def _comparable(spec: dict[str, Any]) -> dict[str, Any]:
    """The IR without what legitimately differs: executor command lines and sdkVersion."""
    spec = copy.deepcopy(spec)
    spec.pop("sdkVersion")
    for executor in spec["deploymentSpec"]["executors"].values():
        container = executor["container"]
        container.pop("command")
        container.pop("args")
    return spec


def _compile_kfp(target: Any, path: Path) -> tuple[dict[str, Any], str]:
    from kfp import compiler as kfp_compiler

    kfp_compiler.Compiler().compile(target, str(path))
    text = path.read_text()
    return yaml.safe_load(text), text


def _compile_stepwell(target: Any, path: Path) -> tuple[dict[str, Any], str]:
    compiler.Compiler().compile(target, str(path))
    text = path.read_text()
    return yaml.safe_load(text), text


@pytest.mark.parametrize("name", PIPELINE_FILES)
def test_ir_matches_kfp(name: str, load_pipeline: Any, tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # kfp's base-image notice
        kfp_spec, _ = _compile_kfp(load_pipeline(name, "kfp"), tmp_path / "kfp.yaml")
    ours, _ = _compile_stepwell(load_pipeline(name), tmp_path / "stepwell.yaml")
    # Compare as YAML text so that a failure shows a readable line diff.
    assert yaml.safe_dump(_comparable(ours)) == yaml.safe_dump(_comparable(kfp_spec))


@pytest.mark.parametrize("name", PIPELINE_FILES)
def test_header_comment_matches_kfp(name: str, load_pipeline: Any, tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        _, kfp_text = _compile_kfp(load_pipeline(name, "kfp"), tmp_path / "kfp.yaml")
    _, our_text = _compile_stepwell(load_pipeline(name), tmp_path / "stepwell.yaml")

    def header(text: str) -> list[str]:
        return [line for line in text.splitlines() if line.startswith("#")]

    assert header(our_text) == header(kfp_text)


def test_pipeline_parameters_override_defaults(load_pipeline: Any, tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        from kfp import compiler as kfp_compiler

        kfp_compiler.Compiler().compile(
            load_pipeline("returns_output", "kfp"),
            str(tmp_path / "kfp.yaml"),
            pipeline_parameters={"x": 4, "y": 9},
        )
    expected = yaml.safe_load((tmp_path / "kfp.yaml").read_text())
    ours = compiler.compile_to_dict(load_pipeline("returns_output"), {"x": 4, "y": 9})
    assert ours["root"]["inputDefinitions"] == expected["root"]["inputDefinitions"]
