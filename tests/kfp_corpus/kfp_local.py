"""Running corpus pipelines on ``kfp.local`` (kfp 2.17.3, ``SubprocessRunner(use_venv=False)``).

Each pipeline runs in its own Python process (``python -m tests.kfp_corpus.kfp_local``):
``kfp.local`` keeps its configuration in a process-wide singleton, prints its task logs, and
costs about 0.7 s per task, so the test starts every pipeline at once and reads back one JSON
record per run (``run<i>.json``; kfp.local indents what is printed after it, so not stdout). A run's record holds what kfp.local reported (SUCCEEDED, FAILED, or ERROR when
it refused to run the pipeline at all), the pipeline's outputs, the error message, and the
parameter outputs of every task that executed, read from kfp.local's output layout
(``<pipeline_root>/<pipeline>-<timestamp>/<task path>/executor_output.json``, where a loop
iteration is a ``<for-loop>-iteration-<i>`` folder and condition, exit-handler and nested-pipeline
DAGs add no folder).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ANSI = re.compile(r"\x1b\[[0-9;]*m")
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class LocalRun:
    state: str  # SUCCEEDED, FAILED, or ERROR (refused before any task ran)
    output: Any
    error: str
    tasks: dict[str, Any]  # task path -> parameter outputs ("Output" unwrapped), or "<artifacts:...>"
    seconds: float


@dataclass
class LocalResult:
    runs: list[LocalRun]
    log: str  # everything kfp.local and the tasks printed, colour codes removed
    returncode: int
    seconds: float = 0.0
    root: Path = field(default_factory=Path)

    def text(self) -> str:
        return self.log + "\n".join(run.error for run in self.runs)


def launch(build: str, runs: list[dict[str, Any]], root: Path, caching: bool = False) -> subprocess.Popen[bytes]:
    """Starts ``sources.<build>`` on kfp.local in a child process; ``runs`` are
    ``{"arguments": {...}, "before": [[action, path, text?], ...]}`` applied in order."""
    root.mkdir(parents=True, exist_ok=True)
    job = {"build": build, "runs": runs, "root": str(root), "caching": caching}
    (root / "job.json").write_text(json.dumps(job))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")])))
    log = (root / "log.txt").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "tests.kfp_corpus.kfp_local", str(root / "job.json")],
        cwd=str(root),
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def collect(process: subprocess.Popen[bytes], root: Path, timeout: float) -> LocalResult:
    started = time.monotonic()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    log = ANSI.sub("", (root / "log.txt").read_text(errors="replace"))
    runs = []
    while (root / f"run{len(runs)}.json").exists():
        runs.append(LocalRun(**json.loads((root / f"run{len(runs)}.json").read_text())))
    return LocalResult(runs=runs, log=log, returncode=process.returncode, seconds=time.monotonic() - started, root=root)


# ----- the child process --------------------------------------------------------------


def _task_value(path: Path) -> Any:
    record = json.loads(path.read_text())
    uris = {
        a["uri"]: f"<artifact:{name}>"
        for name, group in record.get("artifacts", {}).items()
        for a in group.get("artifacts", [])
    }
    params = {k: uris.get(v, v) if isinstance(v, str) else v for k, v in record.get("parameterValues", {}).items()}
    if not params:
        return "<artifacts:" + ",".join(sorted(record.get("artifacts", {}))) + ">"
    return params["Output"] if list(params) == ["Output"] else params


def _tasks(run_root: Path) -> dict[str, Any]:
    return {
        str(p.parent.relative_to(run_dir)): _task_value(p)
        for run_dir in run_root.iterdir()
        if run_dir.is_dir()
        for p in sorted(run_dir.rglob("executor_output.json"))
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (str, int, float, bool, list)) or value is None:
        return value
    return f"<{type(value).__name__}:{getattr(value, 'uri', value)}>"


def _before(actions: list[list[str]], root: Path) -> None:
    run0 = next((d for d in sorted((root / "run0").iterdir()) if d.is_dir()), root) if (root / "run0").exists() else root
    for action, raw, *text in actions:
        path = Path(raw.format(root=root, run0=run0))
        if action == "write":
            path.write_text(text[0])
        elif action == "delete":
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        else:
            raise ValueError(action)


def main(job_file: str) -> None:
    from kfp import local

    from tests.kfp_corpus import sources

    job = json.loads(Path(job_file).read_text())
    root = Path(job["root"])
    build = getattr(sources, job["build"])
    for index, run in enumerate(job["runs"]):
        _before(run.get("before", []), root)
        run_root = root / f"run{index}"
        run_root.mkdir()
        local.init(
            runner=local.SubprocessRunner(use_venv=False),
            pipeline_root=str(run_root),
            enable_caching=job["caching"],
            cache_root=str(root / "cache"),
        )
        arguments = {k: v.format(root=root) if isinstance(v, str) else v for k, v in run["arguments"].items()}
        state, output, error = "SUCCEEDED", None, ""
        started = time.monotonic()
        try:
            task = build()(**arguments)
            output = _jsonable(dict(task.outputs)) if task is not None else None
        except Exception as exc:  # kfp.local raises RuntimeError for a failed or refused pipeline
            error = ANSI.sub("", f"{type(exc).__name__}: {exc}")
            state = "FAILED" if "finished with status FAILURE" in error else "ERROR"
        record = LocalRun(state, output, error, _tasks(run_root), round(time.monotonic() - started, 3))
        (root / f"run{index}.json").write_text(json.dumps(record.__dict__))


if __name__ == "__main__":
    main(sys.argv[1])
