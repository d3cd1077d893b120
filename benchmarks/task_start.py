"""Per-task start cost of the local executor: ``fork`` (fork server) against ``spawn``.

    .venv/bin/python benchmarks/task_start.py [--tasks 200]

Runs ``--tasks`` tasks one after another through :class:`LocalExecutor` directly (no
engine, no database) and reports medians of:

* submit: the time ``submit()`` takes (the scheduler thread is busy for this long);
* launcher up: submit → the launcher's ``run_task`` begins (interpreter start and imports
  for ``spawn``; a ``fork`` for ``fork``);
* command: the launcher starts the user command → the launcher is done (the user command
  and the launcher's own bookkeeping);
* exit seen: the launcher's result is final → the scheduler's exit callback (writing the
  result file, the process exit, and the exit status reaching the scheduler);
* total: submit → the exit callback;
* task CPU: CPU time of the task processes (launcher and user command) per task.

for two user commands: ``/bin/true`` (the process floor) and a Stepwell lightweight
component (``python3 -m stepwell.runtime.executor``: a second Python), a kfp-compiled
lightweight component (as compiled: ``sh -c PRELUDE ...``, which the launcher turns into
``python -m kfp.dsl.executor_main`` with ``_KFP_RUNTIME=true``), and three ways
to start: ``spawn`` (an interpreter per launcher and per user command), ``fork-exec``
(forked launcher, exec'd user command) and ``fork`` (the default: forked launcher, and
Python components run in the launcher's process, from the fork server's warm interpreter).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from stepwell.runtime._launch_taskfile import TaskFile
from stepwell_scheduler.executors import LaunchRequest, LocalExecutor

COMPONENT = "from typing import *\n\nfrom stepwell.runtime.executor import *\n\ndef step(x: int) -> int:\n    return x + 1\n"
COMMANDS: dict[str, dict[str, Any]] = {
    "/bin/true": {"command": ["/bin/true"], "args": []},
    "stepwell component": {
        "command": ["python3", "-m", "stepwell.runtime.executor", "--component_source", COMPONENT],
        "args": ["--executor_input", "{{$}}", "--function_to_execute", "step"],
    },
}


def _kfp_container() -> dict[str, Any]:
    """The container of a kfp-compiled lightweight component (``noop``), as compiled."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import kfp_spec, quiet
    from parallel_for import _one_task

    quiet()
    (executor,) = kfp_spec(_one_task)["deploymentSpec"]["executors"].values()
    container = executor["container"]
    return {"command": container["command"], "args": container["args"]}


def _task(folder: Path, container: dict[str, Any]) -> TaskFile:
    out = folder / "out"
    outputs: dict[str, Any] = {"outputFile": str(out / "executor_output.json")}
    if container["command"][0] != "/bin/true":
        outputs["parameters"] = {"Output": {"outputFile": str(out / "Output")}}
    return TaskFile(
        run_id="bench",
        pipeline_name="bench",
        task_name=folder.name,
        pipeline_root=str(folder / "artifacts"),
        executor_input={
            "inputs": {"parameterValues": {"x": 1, "a": 1, "b": 1}},
            "outputs": outputs,
        },
        container={"image": "python:3.11", **container},
        scratch_dir=str(folder / "scratch"),
        result_file=str(folder / "result.json"),
        log_file=str(folder / "task.log"),
        output_parameter_types={"Output": "NUMBER_INTEGER"},
    )


def measure(method: str, label: str, tasks: int, root: Path) -> dict[str, float]:
    if method == "fork-exec":  # fork the launcher, but exec the user command's interpreter
        executor = LocalExecutor(start_method="fork", inline_modules=())
    else:
        executor = LocalExecutor(start_method=method)  # type: ignore[arg-type]
    done = threading.Event()
    executor.on_exit = lambda key: done.set()
    rows: dict[str, list[float]] = {"submit": [], "launcher up": [], "command": [], "exit seen": [], "total": []}
    env = dict(os.environ)
    cpu_before = 0.0
    try:
        for i in range(-3, tasks):  # three warm-up tasks
            if i == 0:
                cpu_before = _task_cpu(executor)
            folder = root / f"{method}-{label.replace('/', '_').replace(' ', '_')}-{i}"
            folder.mkdir(parents=True)
            task = _task(folder, COMMANDS[label])
            task.save(str(folder / "task.json"))
            done.clear()
            t0 = time.time()
            p0 = time.perf_counter()
            handle = executor.submit(
                LaunchRequest(
                    key=folder.name,
                    task_file=str(folder / "task.json"),
                    result_file=task.result_file,
                    launcher_log=str(folder / "launcher.log"),
                    cwd=str(folder),
                    env=env,
                )
            )
            p1 = time.perf_counter()
            if not done.wait(60):
                raise TimeoutError(folder.name)
            p2 = time.perf_counter()
            t2 = time.time()
            result = json.loads(Path(handle.result_file).read_text())
            if result["status"] != "SUCCEEDED":
                raise RuntimeError(f"{label}: {result['error']}")
            if label != "/bin/true" and result["parameters"] != {"Output": 2 if "stepwell" in label else 1}:
                raise RuntimeError(f"{label}: wrong outputs {result['parameters']}")
            if i < 0:
                continue
            rows["submit"].append((p1 - p0) * 1000)
            rows["launcher up"].append((result["started_at"] - t0) * 1000)
            rows["command"].append((result["finished_at"] - result["command_started_at"]) * 1000)
            rows["exit seen"].append((t2 - result["finished_at"]) * 1000)
            rows["total"].append((p2 - p0) * 1000)
        cpu = (_task_cpu(executor) - cpu_before) / tasks * 1000
    finally:
        executor.shutdown()
    return {**{name: statistics.median(values) for name, values in rows.items()}, "task CPU": cpu}


def _task_cpu(executor: LocalExecutor) -> float:
    """CPU seconds of the task processes that ended so far: the fork server's reaped
    children (``fork``), or this process's (``spawn``)."""
    server = executor._fork.pid if executor.start_method == "fork" and executor._fork is not None else None
    if server is None:
        times = os.times()
        return times.children_user + times.children_system
    with open(f"/proc/{server}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--method", action="append", choices=("spawn", "fork-exec", "fork"), help="only these methods")
    parser.add_argument("--command", action="append", help="only these user commands (labels as printed)")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {args.tasks} sequential tasks per cell, medians in ms")
    print(
        f"{'method':<10} {'user command':<20} {'submit':>8} {'launcher up':>12} {'command':>9} "
        f"{'exit seen':>10} {'total':>8} {'task CPU':>9}"
    )
    COMMANDS["kfp component"] = _kfp_container()
    with tempfile.TemporaryDirectory() as tmp:
        for label in args.command or list(COMMANDS):
            for method in args.method or ("spawn", "fork-exec", "fork"):
                m = measure(method, label, args.tasks, Path(tmp))
                print(
                    f"{method:<10} {label:<20} {m['submit']:8.2f} {m['launcher up']:12.2f} "
                    f"{m['command']:9.2f} {m['exit seen']:10.2f} {m['total']:8.2f} {m['task CPU']:9.2f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
