"""The in-task executor: path parameters, artifact lists, final status, package installs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stepwell import dsl
from stepwell.dsl import Dataset, Input, InputPath, OutputPath, PipelineTaskFinalStatus
from stepwell.runtime import executor


def _source(component: Any) -> str:
    return component.source


@dsl.component
def write_paths(text: str, out_path: OutputPath("Dataset"), count: OutputPath(int)):
    with open(out_path, "w") as f:
        f.write(text)
    with open(count, "w") as f:
        f.write(str(len(text)))


@dsl.component
def read_path(in_path: InputPath("Dataset")) -> str:
    with open(in_path) as f:
        return f.read()


@dsl.component
def join(parts: Input[list[Dataset]]) -> str:
    return "+".join(open(p.path).read() for p in parts)


@dsl.component
def on_exit(status: PipelineTaskFinalStatus) -> str:
    return f"{status.state}:{status.pipeline_task_name}:{status.error_message}"


def _run(component: Any, executor_input: dict[str, Any]) -> dict[str, Any]:
    return executor.execute(_source(component), component.python_func.__name__, executor_input)


def test_output_paths_and_input_path(tmp_path: Path) -> None:
    out_uri, count_file = str(tmp_path / "store" / "out"), str(tmp_path / "params" / "count")
    result = _run(
        write_paths,
        {
            "inputs": {"parameterValues": {"text": "abc"}},
            "outputs": {
                "parameters": {"count": {"outputFile": count_file}},
                "artifacts": {"out_path": {"artifacts": [{"name": "out_path", "uri": out_uri}]}},
                "outputFile": str(tmp_path / "task" / "out.json"),
            },
        },
    )
    assert Path(out_uri).read_text() == "abc" and Path(count_file).read_text() == "3"
    # The parameter file is read by the launcher; the executor reports only the artifact.
    assert "parameterValues" not in result
    assert result["artifacts"]["out_path"]["artifacts"][0]["uri"] == out_uri
    read = _run(
        read_path,
        {"inputs": {"artifacts": {"in_path": {"artifacts": [{"name": "1", "uri": out_uri}]}}}},
    )
    assert read["parameterValues"] == {"Output": "abc"}


def test_list_of_artifacts(tmp_path: Path) -> None:
    entries = []
    for i, text in enumerate(["a", "b"]):
        path = tmp_path / f"p{i}"
        path.write_text(text)
        entries.append({"name": str(i), "uri": str(path)})
    result = _run(join, {"inputs": {"artifacts": {"parts": {"artifacts": entries}}}})
    assert result["parameterValues"] == {"Output": "a+b"}


def test_final_status_in_either_key_style() -> None:
    camel = {"state": "FAILED", "pipelineTaskName": "exit-handler-1", "error": {"message": "x"}}
    snake = {"state": "SUCCEEDED", "pipeline_task_name": "exit-handler-1"}
    for value, expected in (
        (camel, "FAILED:exit-handler-1:x"),
        (snake, "SUCCEEDED:exit-handler-1:None"),
    ):
        result = _run(on_exit, {"inputs": {"parameterValues": {"status": value}}})
        assert result["parameterValues"] == {"Output": expected}


def test_installed_packages_are_not_reinstalled(monkeypatch: Any) -> None:
    calls: list[list[str]] = []
    import subprocess

    monkeypatch.setattr(subprocess, "run", lambda argv, **kw: calls.append(argv))
    assert executor.install_packages(["pip", "PyYAML>=5"]) == []
    assert calls == []
    missing = executor.install_packages(
        ["pip", "surely-not-installed-pkg==1.0"],
        ["https://example.org/simple", "https://mirror.example.com:8443/pypi"],
    )
    assert missing == ["surely-not-installed-pkg==1.0"]
    (argv,) = calls
    assert argv[argv.index("--index-url") + 1] == "https://example.org/simple"
    assert argv[argv.index("--extra-index-url") + 1] == "https://mirror.example.com:8443/pypi"
    assert "example.org" in argv and "mirror.example.com" in argv
    assert argv[-1] == "surely-not-installed-pkg==1.0"


def test_command_carries_index_urls() -> None:
    @dsl.component(packages_to_install=["six"], pip_index_urls=["https://example.org/simple"])
    def f() -> int:
        return 1

    command = f.container_spec()["command"]
    assert command[command.index("--pip_index_urls") + 1] == json.dumps(
        ["https://example.org/simple"]
    )
