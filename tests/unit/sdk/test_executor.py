"""``python -m stepwell.runtime.executor`` run as a real subprocess, as the launcher runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from stepwell import dsl
from stepwell.dsl import Dataset, Input, Metrics, Model, Output

SRC = Path(__file__).resolve().parents[3] / "src"


@dsl.component
def make_data(rows: int, data: Output[Dataset], sep: str = ",") -> str:
    with open(data.path, "w") as f:
        f.writelines(f"{i}{sep}{i * i}\n" for i in range(rows))
    data.metadata["rows"] = rows
    return sep


@dsl.component
def train(
    data: dsl.Input[dsl.Dataset], lr: float, model: dsl.Output[dsl.Model], metrics: Output[Metrics]
) -> float:
    with open(data.path) as f:
        n = len(f.readlines())
    with open(model.path, "w") as f:
        f.write(f"lr={lr}")
    metrics.log_metric("rows", n)
    metrics.log_metric("lr", lr)
    return lr * n


@dsl.component
def count(xs: list, cfg: dict, flag: bool, n: int = 4) -> int:
    return len(xs) + len(cfg) + int(flag) + n


@dsl.component
def wrong_type(x: int) -> int:
    return x / 2


@dsl.component
def bool_for_int() -> int:
    return True


@dsl.component
def boom(x: int) -> int:
    raise ValueError(f"boom {x}")


@dsl.component
def pair(x: int) -> NamedTuple("Out", [("double", int), ("label", str)]):
    from collections import namedtuple

    return namedtuple("Out", ["double", "label"])(2 * x, f"x={x}")


@dsl.component
def optional_input(model: Input[Model] = None) -> str:
    return "none" if model is None else model.path


def run_component(
    component: Any, executor_input: dict[str, Any], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the compiled command as the launcher does: ``{{$}}`` substituted, python3 swapped."""
    container = component.container_spec()
    placeholder = json.dumps(executor_input)
    argv = [a.replace("{{$}}", placeholder) for a in container["command"] + container["args"]]
    assert argv[0] == "python3"
    argv[0] = sys.executable
    full_env = {**os.environ, "PYTHONPATH": str(SRC), **(env or {})}
    return subprocess.run(argv, capture_output=True, text=True, env=full_env, timeout=60)


def executor_input(
    tmp: Path,
    parameters: dict[str, Any] | None = None,
    inputs: dict[str, str] | None = None,
    outputs: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "inputs": {
            "parameterValues": parameters or {},
            "artifacts": {
                name: {
                    "artifacts": [
                        {
                            "name": "7",
                            "type": {"instanceSchema": ""},
                            "uri": uri,
                            "metadata": {"seen": True},
                        }
                    ]
                }
                for name, uri in (inputs or {}).items()
            },
        },
        "outputs": {
            "parameters": {"Output": {"outputFile": str(tmp / "params" / "Output")}},
            "artifacts": {
                name: {"artifacts": [{"name": name, "uri": uri, "metadata": {}}]}
                for name, uri in (outputs or {}).items()
            },
            "outputFile": str(tmp / "task" / "output_metadata.json"),
        },
    }


def read_output(tmp: Path) -> dict[str, Any]:
    return json.loads((tmp / "task" / "output_metadata.json").read_text())


def test_parameters_in_dataset_and_output_out(tmp_path: Path) -> None:
    uri = str(tmp_path / "store" / "make" / "data")
    result = run_component(make_data, executor_input(tmp_path, {"rows": 3}, outputs={"data": uri}))
    assert result.returncode == 0, result.stderr
    assert Path(uri).read_text() == "0,0\n1,1\n2,4\n"
    assert read_output(tmp_path) == {
        "parameterValues": {"Output": ","},
        "artifacts": {
            "data": {"artifacts": [{"name": "data", "uri": uri, "metadata": {"rows": 3}}]}
        },
    }


def test_input_artifact_and_metrics_metadata(tmp_path: Path) -> None:
    data = tmp_path / "in" / "data"
    data.parent.mkdir()
    data.write_text("a\nb\nc\nd\n")
    model_uri, metrics_uri = str(tmp_path / "out" / "model"), str(tmp_path / "out" / "metrics")
    ei = executor_input(
        tmp_path,
        {"lr": 0.5},
        inputs={"data": str(data)},
        outputs={"model": model_uri, "metrics": metrics_uri},
    )
    result = run_component(train, ei)
    assert result.returncode == 0, result.stderr
    output = read_output(tmp_path)
    assert output["parameterValues"] == {"Output": 2.0}
    assert output["artifacts"]["metrics"]["artifacts"][0]["metadata"] == {"rows": 4, "lr": 0.5}
    assert Path(model_uri).read_text() == "lr=0.5"
    assert not Path(metrics_uri).exists()  # metrics live in metadata only


def test_remote_uris_map_under_the_local_root(tmp_path: Path) -> None:
    ei = executor_input(tmp_path, {"rows": 1}, outputs={"data": "minio://bucket/run/make/data"})
    result = run_component(
        make_data, ei, env={"STEPWELL_LOCAL_ARTIFACT_ROOT": str(tmp_path / "root")}
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "root" / "minio" / "bucket" / "run" / "make" / "data").read_text() == "0,0\n"
    entry = read_output(tmp_path)["artifacts"]["data"]["artifacts"][0]
    assert entry["uri"] == "minio://bucket/run/make/data"


def test_json_parameters_defaults_and_whole_doubles(tmp_path: Path) -> None:
    ei = executor_input(tmp_path, {"xs": [1, 2], "cfg": {"k": "v"}, "flag": True, "n": 10.0})
    result = run_component(count, ei)
    assert result.returncode == 0, result.stderr
    assert read_output(tmp_path)["parameterValues"] == {"Output": 14}

    ei = executor_input(tmp_path, {"xs": [], "cfg": {}, "flag": False})  # n missing: default 4
    assert run_component(count, ei).returncode == 0
    assert read_output(tmp_path)["parameterValues"] == {"Output": 4}


def test_named_tuple_outputs(tmp_path: Path) -> None:
    result = run_component(pair, executor_input(tmp_path, {"x": 21}))
    assert result.returncode == 0, result.stderr
    assert read_output(tmp_path)["parameterValues"] == {"double": 42, "label": "x=21"}


def test_optional_input_artifact_absent(tmp_path: Path) -> None:
    result = run_component(optional_input, executor_input(tmp_path))
    assert result.returncode == 0, result.stderr
    assert read_output(tmp_path)["parameterValues"] == {"Output": "none"}


@pytest.mark.parametrize(
    ("component", "message"),
    [
        (wrong_type, "function wrong_type returned a value of type float; it declares int"),
        (bool_for_int, "function bool_for_int returned a value of type bool; it declares int"),
    ],
)
def test_wrong_return_type_fails_clearly(component: Any, message: str, tmp_path: Path) -> None:
    result = run_component(component, executor_input(tmp_path, {"x": 3}))
    assert result.returncode != 0
    assert message in result.stderr
    assert not (tmp_path / "task" / "output_metadata.json").exists()


def test_exception_exits_1_with_traceback_and_no_output(tmp_path: Path) -> None:
    result = run_component(boom, executor_input(tmp_path, {"x": 5}))
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "ValueError: boom 5" in result.stderr
    assert 'raise ValueError(f"boom {x}")' in result.stderr  # source lines in the traceback
    assert not (tmp_path / "task").exists()


def test_bad_command_lines(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    base = [sys.executable, "-m", "stepwell.runtime.executor"]
    missing = subprocess.run(
        [*base, "--executor_input", "{}"], capture_output=True, text=True, env=env
    )
    assert missing.returncode == 2 and "--component_source" in missing.stderr
    nofunc = subprocess.run(
        [
            *base,
            "--component_source",
            "x = 1",
            "--executor_input",
            "{}",
            "--function_to_execute",
            "f",
            "--unknown_flag",
            "ignored",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert nofunc.returncode == 1 and "no function named 'f'" in nofunc.stderr


def test_executor_imports_only_stdlib_and_stepwell_runtime() -> None:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "stepwell.runtime.executor", "--help"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0
    modules = [line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line]
    stepwell_modules = {m for m in modules if m.startswith("stepwell")}
    assert stepwell_modules <= {
        "stepwell",
        "stepwell.runtime",
        "stepwell.runtime._executor_types",
        "stepwell.runtime.paths",
    }, stepwell_modules
    for heavy in ("kfp", "grpc", "google", "yaml", "sqlalchemy"):
        assert not any(m == heavy or m.startswith(heavy + ".") for m in modules), heavy
