"""Placeholder substitution and output-parameter parsing in the launcher (pure functions)."""

from __future__ import annotations

import json
import sys

import pytest

from stepwell.runtime._launch_placeholders import (
    PlaceholderError,
    Substitutions,
    parse_parameter_text,
    text_form,
    with_defaults,
)
from stepwell.runtime._launch_taskfile import ArtifactSlot, TaskFile
from stepwell.runtime.launcher import build_argv


def _subs() -> Substitutions:
    executor_input = {
        "inputs": {
            "parameterValues": {"s": "txt", "n": 3, "x": 2.5, "whole": 4.0, "flag": True, "xs": [1, 2], "cfg": {"k": "v"}},
            "artifacts": {"ds": {"artifacts": [{"name": "42", "uri": "s3://b/k/ds", "metadata": {"rows": 3}}]}},
        },
        "outputs": {
            "parameters": {"p": {"outputFile": "/t/outputs/p"}},
            "artifacts": {"model": {"artifacts": [{"name": "model", "uri": "s3://b/k/model", "metadata": {}}]}},
            "outputFile": "/t/output_metadata.json",
        },
    }
    paths = {("inputs", "ds"): "/scratch/s3/b/k/ds", ("outputs", "model"): "/scratch/s3/b/k/model"}
    job = {"pipeline_job_name": "run-1", "pipeline_task_name": "train", "pipeline_root": "s3://b", "pipeline_job_uuid": "u"}
    return Substitutions(executor_input, paths, job)


@pytest.mark.parametrize(
    ("value", "text"),
    [("a b", "a b"), (3, "3"), (3.0, "3"), (2.5, "2.5"), (True, "true"), (False, "false"), ([1, "a"], '[1,"a"]'), ({"k": 1}, '{"k":1}')],
)
def test_text_form(value: object, text: str) -> None:
    assert text_form(value) == text


def test_parameter_artifact_and_job_placeholders() -> None:
    subs = _subs()
    assert subs.substitute("{{$.inputs.parameters['s']}}-{{$.inputs.parameters['n']}}") == "txt-3"
    assert subs.substitute("{{$.inputs.parameters['whole']}}|{{$.inputs.parameters['flag']}}") == "4|true"
    assert subs.substitute("{{$.inputs.parameters['xs']}}") == "[1,2]"
    assert subs.substitute("{{$.inputs.artifacts['ds'].path}}") == "/scratch/s3/b/k/ds"
    assert subs.substitute("{{$.inputs.artifacts['ds'].uri}}") == "s3://b/k/ds"
    assert subs.substitute("{{$.inputs.artifacts['ds'].metadata['rows']}}") == "3"
    assert subs.substitute("{{$.outputs.artifacts['model'].path}}") == "/scratch/s3/b/k/model"
    assert subs.substitute("{{$.outputs.artifacts['model'].uri}}") == "s3://b/k/model"
    assert subs.substitute("{{$.outputs.parameters['p'].output_file}}") == "/t/outputs/p"
    assert subs.substitute("{{$.outputs.output_file}}") == "/t/output_metadata.json"
    assert subs.substitute("{{$.pipeline_job_name}}/{{$.pipeline_task_name}}@{{$.pipeline_root}}") == "run-1/train@s3://b"
    assert json.loads(subs.substitute("{{$}}"))["inputs"]["parameterValues"]["n"] == 3


def test_unknown_placeholders_are_errors() -> None:
    with pytest.raises(PlaceholderError, match="nope"):
        _subs().substitute("{{$.inputs.parameters['nope']}}")
    with pytest.raises(PlaceholderError):
        _subs().substitute("{{$.something_else}}")


def test_structured_placeholders() -> None:
    subs = _subs()
    concat = json.dumps({"Concat": ["--n=", "{{$.inputs.parameters['n']}}"]})
    present = json.dumps({"IfPresent": {"InputName": "s", "Then": ["--s", "{{$.inputs.parameters['s']}}"]}})
    absent = json.dumps({"IfPresent": {"InputName": "missing", "Then": ["--m"], "Else": ["--none"]}})
    assert subs.expand(["a", concat, present, absent]) == ["a", "--n=3", "--s", "txt", "--none"]


def test_with_defaults_adds_missing_parameters_as_ints() -> None:
    ei = {"inputs": {"parameterValues": {"a": 1}}}
    out = with_defaults(ei, {"a": {"defaultValue": 9}, "b": {"parameterType": "NUMBER_INTEGER", "defaultValue": 5.0}, "c": {}})
    assert out["inputs"]["parameterValues"] == {"a": 1, "b": 5}
    assert isinstance(out["inputs"]["parameterValues"]["b"], int)
    assert ei == {"inputs": {"parameterValues": {"a": 1}}}


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("hello\n", "STRING", "hello\n"),
        (" 42\n", "NUMBER_INTEGER", 42),
        ("2.5", "NUMBER_DOUBLE", 2.5),
        ("True\n", "BOOLEAN", True),
        ("f", "BOOLEAN", False),
        ("[1, 2]", "LIST", [1, 2]),
        ('{"a": 1}', "STRUCT", {"a": 1}),
    ],
)
def test_parse_parameter_text(text: str, kind: str, value: object) -> None:
    assert parse_parameter_text(text, kind) == value


@pytest.mark.parametrize(("text", "kind"), [("x", "NUMBER_INTEGER"), ("maybe", "BOOLEAN"), ("{}", "LIST"), ("[]", "STRUCT")])
def test_parse_parameter_text_rejects_bad_values(text: str, kind: str) -> None:
    with pytest.raises(ValueError):
        parse_parameter_text(text, kind)


def test_build_argv_replaces_python_and_never_adds_a_shell() -> None:
    task = TaskFile(
        run_id="r",
        pipeline_name="p",
        task_name="t",
        pipeline_root="/root",
        executor_input={"inputs": {"parameterValues": {"n": 2}}, "outputs": {}},
        container={"command": ["python3", "-c", "print(1)"], "args": ["{{$.inputs.parameters['n']}}"]},
        scratch_dir="/tmp/s",
        result_file="/tmp/r.json",
        log_file="/tmp/l.log",
        output_artifacts={"m": [ArtifactSlot(uri="/root/m", path="/root/m")]},
    )
    assert build_argv(task, task.executor_input) == [sys.executable, "-c", "print(1)", "2"]
    task.container = {"command": ["sh", "-c", "echo $0", "{{$.inputs.parameters['n']}}"]}
    assert build_argv(task, task.executor_input) == ["sh", "-c", "echo $0", "2"]


def test_task_file_round_trip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    task = TaskFile(
        run_id="r",
        pipeline_name="p",
        task_name="a/b",
        pipeline_root="s3://b/root",
        executor_input={"inputs": {}},
        container={"command": ["x"]},
        scratch_dir="/s",
        result_file="/r",
        log_file="/l",
        input_artifacts={"d": [ArtifactSlot(uri="s3://b/d", path="/s/s3/b/d", schema_title="system.Dataset")]},
        job_placeholders={"pipeline_job_name": "r"},
    )
    path = str(tmp_path / "task.json")
    task.save(path)
    assert TaskFile.load(path) == task
