"""Stepwell lightweight components submitted as tasks to a real local executor (fork
server), for the executor tests: the task file, the request, and waiting for the end."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from stepwell.runtime._launch_taskfile import ArtifactSlot, TaskFile
from stepwell_scheduler.executors import LaunchRequest, LocalExecutor, TaskHandle

WAIT = 30.0  # upper bound for waiting loops; nothing asserts on elapsed time


def submit(
    executor: LocalExecutor,
    root: Path,
    source: str,
    function: str,
    marker: str,
    output_type: str = "STRING",
    unwritten_artifact: bool = False,
) -> tuple[TaskHandle, threading.Event]:
    """Submits ``function`` of the component ``source``, called with ``marker``, in the
    folder ``root/function``; its log goes to ``root/logs/function.log``."""
    folder = root / function
    folder.mkdir(parents=True)
    out = folder / "out"
    task = TaskFile(
        run_id="run",
        pipeline_name="p",
        task_name=function,
        pipeline_root=str(root / "artifacts"),
        executor_input={
            "inputs": {"parameterValues": {"marker": marker}},
            "outputs": {
                "parameters": {"Output": {"outputFile": str(out / "Output")}},
                "outputFile": str(out / "executor_output.json"),
            },
        },
        container={
            "image": "python:3.11",
            "command": ["python3", "-m", "stepwell.runtime.executor", "--component_source", source],
            "args": ["--executor_input", "{{$}}", "--function_to_execute", function],
        },
        scratch_dir=str(folder / "scratch"),
        result_file=str(folder / "result.json"),
        log_file=str(folder / "task.log"),
        log_uri=f"file://{root}/logs/{function}.log",
        output_parameter_types={"Output": output_type},
    )
    if unwritten_artifact:  # an output the command never writes: the launcher says so on stderr
        task.output_artifacts = {
            "model": [ArtifactSlot(uri=f"file://{root}/artifacts/model", path=str(folder / "scratch" / "model"))]
        }
    task.save(str(folder / "task.json"))
    ended = threading.Event()
    executor.on_exit = lambda _key: ended.set()
    handle = executor.submit(
        LaunchRequest(
            key=f"run\x00{function}",
            task_file=str(folder / "task.json"),
            result_file=task.result_file,
            launcher_log=task.log_file,  # as the engine asks: one log per task
            cwd=str(folder),
            env=dict(os.environ),
        )
    )
    return handle, ended


def wait_for(executor: LocalExecutor, handle: TaskHandle, ended: threading.Event) -> int:
    assert ended.wait(WAIT), "the task did not end"
    code = executor.poll(handle)
    assert code is not None
    return code


def result_of(handle: TaskHandle) -> dict[str, Any]:
    return dict(json.loads(Path(handle.result_file).read_text()))
