"""``stepwell run`` as a user runs it: a real process on an embedded stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PIPELINES = Path(__file__).parent / "pipelines"
STEPWELL = str(Path(sys.executable).parent / "stepwell")


def stepwell(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [STEPWELL, *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


def test_quickstart_json(backend_env: dict[str, str]) -> None:
    done = stepwell("run", "examples/quickstart.py", "-p", "rows=4", "-p", "threshold=100", "--json", env=backend_env)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)  # stdout is exactly one JSON object
    assert set(result) == {"run_id", "state", "outputs", "tasks"}
    assert result["state"] == "SUCCEEDED"
    # ys = 0,1,4,9 -> mean 3.5
    assert result["outputs"] == {"Output": "mean of 4 rows is 3.50, not above 100.0"}
    assert set(result["tasks"]) == {"make-data", "summarize", "report"}
    make = result["tasks"]["make-data"]
    assert make["state"] == "SUCCEEDED"
    assert make["outputs"]["parameters"] == {"Output": 4}
    [data] = make["outputs"]["artifacts"]["data"]
    assert set(data) == {"uri", "metadata"} and data["metadata"]["rows"] == 4
    metrics = result["tasks"]["summarize"]["outputs"]["artifacts"]["metrics"][0]["metadata"]
    assert metrics["mean_y"] == 3.5 and metrics["count"] == 4
    # Progress went to stderr, per task.
    for task in ("make-data", "summarize", "report"):
        assert task in done.stderr


def test_quickstart_text_output(tmp_path: Path) -> None:
    done = stepwell("run", "examples/quickstart.py", env={"STEPWELL_HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert "SUCCEEDED" in done.stdout
    assert 'Output = "mean of 10 rows is 28.50, not above 30.0"' in done.stdout


def test_failing_step_exit_1_shows_task_and_log(backend_env: dict[str, str]) -> None:
    done = stepwell("run", str(PIPELINES / "failing.py"), "--json", env=backend_env)
    assert done.returncode == 1, done.stderr
    result = json.loads(done.stdout)
    assert result["state"] == "FAILED"
    assert result["tasks"]["produce"]["state"] == "SUCCEEDED"
    assert result["tasks"]["explode"]["state"] == "FAILED"
    assert result["tasks"].get("after", {}).get("state") in (None, "PENDING", "SKIPPED", "CANCELED")
    assert "task explode failed" in done.stderr
    assert "about to fail with x=6" in done.stderr  # the tail of its log
    assert "ValueError: boom: cannot handle 6" in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.py"], "no such file"),
        (["examples/quickstart.py", "-p", "nope=1"], "unknown parameter(s) 'nope'"),
        (["examples/quickstart.py", "-p", "rows=many"], "parameter 'rows' must be an integer"),
        (["examples/quickstart.py", "-p", "rows=1.5"], "parameter 'rows' must be an integer"),
        (["examples/quickstart.py", "-p", "rows"], "is not NAME=VALUE"),
        (["tests/integration/cli/pipelines/two.py"], "pick one with --pipeline"),
        (["tests/integration/cli/pipelines/two.py", "--pipeline", "third"], "no pipeline named 'third'"),
    ],
)
def test_bad_input_exit_2_records_nothing(tmp_path: Path, args: list[str], message: str) -> None:
    home = tmp_path / "home"
    done = stepwell("run", *args, env={"STEPWELL_HOME": str(home)})
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert message in done.stderr
    assert done.stdout == ""
    assert not (home / "api.db").exists()  # nothing was started, nothing recorded


def test_invalid_spec_exit_2(tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text("pipelineInfo: {name: x}\nroot: {dag: {tasks: {}}}\nschemaVersion: 2.0.0\n")
    done = stepwell("run", str(spec), env={"STEPWELL_HOME": str(tmp_path / "home")})
    assert done.returncode == 2
    assert "schemaVersion '2.0.0'" in done.stderr


def test_pick_pipeline_by_name(tmp_path: Path) -> None:
    done = stepwell(
        "run", str(PIPELINES / "two.py"), "--pipeline", "second-one", "-p", "name=x", "--json",
        env={"STEPWELL_HOME": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["outputs"] == {"Output": "hello x"}


def test_compile_then_run_yaml(tmp_path: Path) -> None:
    out = tmp_path / "quickstart.yaml"
    done = stepwell("compile", "examples/quickstart.py", "-o", str(out), env={"STEPWELL_HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    import yaml
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    json_format.ParseDict(yaml.safe_load(out.read_text()), pipeline_spec_pb2.PipelineSpec())
    done = stepwell("run", str(out), "-p", "rows=2", "--json", env={"STEPWELL_HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["outputs"]["Output"].startswith("mean of 2 rows is 0.50")


def test_second_run_is_served_from_the_cache_and_no_cache_runs_again(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.txt"
    env = {"STEPWELL_HOME": str(tmp_path / "home")}
    args = ("run", str(PIPELINES / "counting.py"), "-p", f"ledger={ledger}", "--json")
    cached = []
    for _ in range(2):
        done = stepwell(*args, env=env)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["outputs"] == {"Output": 2}
        cached.append({name: t["cached"] for name, t in json.loads(done.stdout)["tasks"].items()})
    assert ledger.read_text().count("called") == 1  # the second run was a cache hit
    assert set(cached[0].values()) == {False} and set(cached[1].values()) == {True}, cached
    run_id = json.loads(done.stdout)["run_id"]
    shown = stepwell("run", "get", run_id, env=env)
    assert shown.returncode == 0, shown.stderr
    assert "CACHED" in shown.stdout and "True" in shown.stdout
    done = stepwell(*args, "--no-cache", env=env)
    assert done.returncode == 0, done.stderr
    assert ledger.read_text().count("called") == 2


def test_run_subcommands_manage_recorded_runs(tmp_path: Path) -> None:
    env = {"STEPWELL_HOME": str(tmp_path)}
    done = stepwell("run", "examples/quickstart.py", "-p", "rows=2", "--json", env=env)
    assert done.returncode == 0, done.stderr
    run_id = json.loads(done.stdout)["run_id"]
    listed = stepwell("run", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert [r["run_id"] for r in json.loads(listed.stdout)] == [run_id]
    assert json.loads(stepwell("runs", "list", "--json", env=env).stdout) == json.loads(listed.stdout)
    got = stepwell("run", "get", run_id, "--json", env=env)
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["state"] == "SUCCEEDED"
