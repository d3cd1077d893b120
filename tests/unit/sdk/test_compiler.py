"""Compiler output: determinism, kfp's parser, naming and the executor command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

import stepwell
from stepwell import compiler, dsl

ALL = ["three_step", "returns_output", "defaults", "single_component", "artifact_input"]


@pytest.mark.parametrize("name", ALL)
def test_compiling_twice_gives_identical_bytes(
    name: str, load_pipeline: Any, tmp_path: Path
) -> None:
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    compiler.Compiler().compile(load_pipeline(name), str(first))
    compiler.Compiler().compile(load_pipeline(name), str(second))
    assert first.read_bytes() == second.read_bytes()


@pytest.mark.parametrize("name", ALL)
def test_spec_parses_with_kfp_pipeline_spec(name: str, load_pipeline: Any, tmp_path: Path) -> None:
    spec = compiler.compile_to_dict(load_pipeline(name))
    message = json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec())
    assert json_format.MessageToDict(message) == spec
    assert message.schema_version == "2.1.0"
    assert message.sdk_version == f"stepwell-{stepwell.__version__}"
    json.dumps(spec)  # JSON-able as it is


def test_yaml_file_holds_compile_to_dict(load_pipeline: Any, tmp_path: Path) -> None:
    target = load_pipeline("three_step")
    path = tmp_path / "p.yaml"
    compiler.Compiler().compile(target, str(path))
    text = path.read_text()
    assert text.startswith("# PIPELINE DEFINITION\n# Name: three-step\n")
    assert yaml.safe_load(text) == compiler.compile_to_dict(target)


def test_json_output_and_bad_extension(load_pipeline: Any, tmp_path: Path) -> None:
    target = load_pipeline("returns_output")
    compiler.Compiler().compile(target, str(tmp_path / "p.json"))
    assert json.loads((tmp_path / "p.json").read_text()) == compiler.compile_to_dict(target)
    with pytest.raises(ValueError, match=r"\.yaml"):
        compiler.Compiler().compile(target, str(tmp_path / "p.txt"))


def test_executor_command_runs_the_stepwell_executor_without_a_shell(load_pipeline: Any) -> None:
    spec = compiler.compile_to_dict(load_pipeline("three_step"))
    executors = spec["deploymentSpec"]["executors"]
    make = executors["exec-make-data"]["container"]
    assert make["image"] == "python:3.11"
    assert make["command"][:4] == [
        "python3",
        "-m",
        "stepwell.runtime.executor",
        "--component_source",
    ]
    assert len(make["command"]) == 5
    assert make["args"] == ["--executor_input", "{{$}}", "--function_to_execute", "make_data"]
    source = make["command"][4]
    assert "from stepwell.runtime.executor import *" in source
    assert "from typing import *" in source
    assert "stepwell.dsl" not in source and "@dsl" not in source
    assert source.count("def make_data(") == 1
    compile(source, "<component>", "exec")  # valid Python on its own

    train = executors["exec-train"]["container"]
    assert train["image"] == "python:3.12"
    assert train["command"][5:] == ["--packages_to_install", '["numpy>=1.20"]']


def test_names_and_dedup(load_pipeline: Any) -> None:
    spec = compiler.compile_to_dict(load_pipeline("three_step"))
    tasks = spec["root"]["dag"]["tasks"]
    assert sorted(tasks) == ["make-data", "report", "report-2", "train"]
    assert tasks["report-2"]["componentRef"] == {"name": "comp-report-2"}
    assert spec["components"]["comp-report-2"]["executorLabel"] == "exec-report-2"
    assert tasks["train"]["taskInfo"] == {"name": "Train model"}
    assert tasks["report"]["dependentTasks"] == ["make-data", "train"]
    assert tasks["report-2"]["dependentTasks"] == ["train"]
    assert tasks["report-2"]["cachingOptions"] == {}
    assert tasks["make-data"]["cachingOptions"] == {"enableCache": True}

    returns = load_pipeline("returns_output")
    assert returns.pipeline_spec_name == "sum-pipeline"
    assert compiler.compile_to_dict(returns)["pipelineInfo"]["name"] == "sum-pipeline"


def test_discovery_attributes(load_pipeline: Any) -> None:
    pipeline = load_pipeline("three_step")
    component = load_pipeline("single_component")
    assert dsl.is_pipeline(pipeline) and not dsl.is_component(pipeline)
    assert dsl.is_component(component) and not dsl.is_pipeline(component)
    assert pipeline.pipeline_spec_name == "three-step"
    assert pipeline.python_func.__name__ == "three_step"
    assert component.python_func.__name__ == "evaluate_model"
    assert not dsl.is_pipeline(pipeline.python_func)


def test_integer_values_are_written_as_doubles(load_pipeline: Any) -> None:
    spec = compiler.compile_to_dict(load_pipeline("defaults"))
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert params["i"]["defaultValue"] == 7.0 and isinstance(params["i"]["defaultValue"], float)
    assert params["xs"]["defaultValue"] == ["a", 1.0]
    assert params["b"]["defaultValue"] is True
    assert params["opt"] == {"isOptional": True, "parameterType": "NUMBER_INTEGER"}
    assert spec["defaultPipelineRoot"] == "/tmp/stepwell-root"
    assert spec["pipelineInfo"]["displayName"] == "Defaults"


def test_unknown_pipeline_parameter_is_rejected(load_pipeline: Any) -> None:
    with pytest.raises(ValueError, match="'nope'"):
        compiler.compile_to_dict(load_pipeline("returns_output"), {"nope": 1})


def test_compiling_something_else_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match=r"@dsl\.pipeline"):
        compiler.compile_to_dict(lambda: None)


def test_dsl_artifact_classes_are_the_runtime_classes() -> None:
    from stepwell.runtime import executor

    for name in [
        "Artifact",
        "Dataset",
        "Model",
        "Metrics",
        "ClassificationMetrics",
        "SlicedClassificationMetrics",
        "HTML",
        "Markdown",
        "Input",
        "Output",
    ]:
        assert getattr(dsl, name) is getattr(executor, name)
    assert dsl.Dataset.schema_title == "system.Dataset"
    assert dsl.Dataset.schema_version == "0.0.1"
