"""Engine overhead per task and the quickstart's wall time.

    .venv/bin/python benchmarks/engine_overhead.py [--backend sqlite|postgres] [--repeat N]

Overhead per task is measured from the engine's own timestamps, as the API reports them:
  - dependencies done -> process started: a task's start_time minus the latest end_time of
    the tasks it depends on (for a first task: minus its create_time);
  - the process start itself is excluded from the step's run time.
The quickstart's wall time is `stepwell run examples/quickstart.py` end to end, as a user
sees it (process start, embedded stack start, run, exit), on a fresh STEPWELL_HOME.
For --backend postgres, set STEPWELL_DATABASE_URL (a database the services may use).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def _deps(spec: dict[str, Any]) -> dict[str, list[str]]:
    return {name: list(t.get("dependentTasks", [])) for name, t in spec["root"]["dag"]["tasks"].items()}


def overhead_ms(run: Any, spec: dict[str, Any]) -> list[float]:
    tasks = {t.task_id: t for t in run.tasks}
    out = []
    for name, deps in _deps(spec).items():
        task = tasks[name]
        ready = max((tasks[d].end_time for d in deps), default=task.create_time)
        out.append((task.start_time - ready).total_seconds() * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if args.backend == "postgres" and not os.environ.get("STEPWELL_DATABASE_URL"):
        sys.exit("set STEPWELL_DATABASE_URL for --backend postgres")

    import logging

    logging.disable(logging.WARNING)
    import overhead_pipeline

    from stepwell import compiler
    from stepwell.cli.embedded import EmbeddedStack
    from stepwell.client import Client

    samples: list[float] = []
    per_run: list[float] = []
    with tempfile.TemporaryDirectory() as home, EmbeddedStack(home=Path(home)) as stack, Client(stack.api_address) as client:
        for pipeline in (overhead_pipeline.chain, overhead_pipeline.fan):
            spec = compiler.compile_to_dict(pipeline)
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                run = client.wait_for_run_completion(client.create_run(spec).run_id, timeout=600, sleep_duration=0.02)
                per_run.append(time.perf_counter() - t0)
                assert run.state == "SUCCEEDED", run.error
                samples += overhead_ms(run, spec)
    samples.sort()
    print(f"backend={args.backend} tasks={len(samples)}")
    print(
        "engine overhead, dependencies done -> process started (ms): "
        f"median {statistics.median(samples):.1f}, p90 {samples[int(len(samples) * 0.9)]:.1f}, max {samples[-1]:.1f}"
    )

    walls = []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as home:
            t0 = time.perf_counter()
            subprocess.run(
                [str(Path(sys.executable).parent / "stepwell"), "run", str(ROOT / "examples" / "quickstart.py")],
                env={**os.environ, "STEPWELL_HOME": home},
                check=True,
                capture_output=True,
            )
            walls.append(time.perf_counter() - t0)
    print(f"quickstart wall time (s): median {statistics.median(walls):.2f}, min {min(walls):.2f}, max {max(walls):.2f}")


if __name__ == "__main__":
    main()
