"""(c) Engine overhead per task, on SQLite and on Postgres.

    .venv/bin/python benchmarks/engine_overhead.py [--backend sqlite|postgres|both] [--repeat 3] [--poll 0.1] [--standalone]

Runs kfp-compiled pipelines of no-op lightweight components (``chain-10``: ten tasks in a
line; ``diamond-6``: one → four → one) and times every link from an upstream task to its
downstream task.

By default everything runs in this process (the embedded stack: API, scheduler and
metadata services and the client, sharing one GIL), and the scheduler's executor is timed
from outside the engine. The client follows each run as ``stepwell run`` does, with a
``GetRun`` every ``--poll`` seconds (0.1, as ``stepwell run``; rounds before the seventh
polled every 0.05 s). Each poll costs this process about 5 ms of CPU (client, API
service), which a link it overlaps waits for:

* upstream exit → submit: the executor reported the last upstream process's exit; the
  engine then harvested it (result file, metadata, database), advanced the DAG, resolved
  inputs, checked the cache, built the task file and called ``submit`` — all engine work
  (since the eighth round the task's own process writes the task file, after ``submit``);
* submit → started: ``submit`` returned (the task's process exists);
* exit → downstream started: the sum, the issue's "process exit → downstream started"
  (equal to "dependencies satisfied → process started" plus the harvest of the upstream).

Both modes also time the links from the result files the task launchers write
(``<work_dir>/runs/<run>/tasks/<task>/a<attempt>/result.json``): the downstream launcher's
``started_at`` minus the latest ``finished_at`` of its upstream launchers. This overstates
the engine's share: it also holds the upstream's result write and process exit, and the
downstream launcher's start up to reading its task file. The embedded mode shows these two
parts (finished_at → exit reported; submit returned → started_at) from the executor clock.

``--standalone`` runs ``stepwell-scheduler`` as its own process, as a deployment does (the
metadata service and a stub API peer stay in this process, as in ``memory.py``), drives it
over gRPC and reports the result-file measure only: the executor of another process cannot
be wrapped.

``--backend postgres`` uses a scratch database on ``$STEPWELL_BENCH_PG_URL``
(default ``postgresql+psycopg2://postgres@127.0.0.1:5432/test``), created and dropped here.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

from common import (
    database,
    embedded_stack,
    git_revision,
    kfp_spec,
    machine,
    machine_speed,
    postgres_round_trip,
    quiet,
    result_file_overheads,
    run_and_wait,
    scheduler_process,
    scheduler_work_dir,
    settle,
    summary,
    task_results,
)

RESULT_NOTE = (
    "(result files: downstream launcher started_at - last upstream launcher finished_at; more\n"
    "   than the engine's share: also holds the upstream's result write and process exit and\n"
    "   the downstream launcher's start up to reading its task file)"
)


def pipelines() -> list[tuple[str, dict[str, Any], dict[str, Any], Any]]:
    """``(name, spec, arguments, expected output)`` of the measured pipelines."""
    import shared_pipelines

    out = []
    for name in ("chain-10", "diamond-6"):
        pipeline, arguments, expected = shared_pipelines.PIPELINES[name]
        out.append((name, kfp_spec(pipeline), arguments, expected))
    return out


def measure(backend: str, repeat: int, poll: float = 0.1) -> dict[str, list[float]]:
    result: dict[str, list[float]] = {
        "engine": [],
        "start": [],
        "total": [],
        "files": [],
        "finish_to_exit": [],
        "submit_to_launcher": [],
    }
    with database(backend) as url, embedded_stack(url) as (stack, client, clock):
        work_dir = scheduler_work_dir(stack)
        for name, spec, arguments, expected in pipelines():
            for i in range(repeat + 1):
                run, _ = run_and_wait(client, spec, arguments, poll=poll)
                if run.state != "SUCCEEDED" or run.outputs.parameters.get("Output") != expected:
                    raise RuntimeError(f"{name} ended {run.state}: {run.error}")
                if not i:
                    continue  # warm-up
                engine, start, total = clock.overheads(run.run_id, spec)
                result["engine"] += engine
                result["start"] += start
                result["total"] += total
                result.setdefault(f"total {name}", []).extend(total)
                result["files"] += result_file_overheads(work_dir, run.run_id, spec)
                finish_to_exit, submit_to_launcher = split_links(clock, work_dir, run.run_id, spec)
                result["finish_to_exit"] += finish_to_exit
                result["submit_to_launcher"] += submit_to_launcher
    return result


def split_links(clock: Any, work_dir: Path, run_id: str, spec: dict[str, Any]) -> tuple[list[float], list[float]]:
    """What the result-file measure holds beyond the executor's, per link, in ms: (the last
    upstream launcher's ``finished_at`` → the executor reports its exit; ``submit``
    returned → the downstream launcher's ``started_at``). Wall and monotonic clocks are
    matched by one offset taken now."""
    offset = time.time() - time.monotonic()
    tasks = spec["root"]["dag"]["tasks"]
    results = task_results(work_dir, run_id, tasks)
    with clock.lock:
        times = {k.split("\x00", 1)[1]: v for k, v in clock.times.items() if k.startswith(run_id + "\x00")}
    finish_to_exit, submit_to_launcher = [], []
    for name, task in tasks.items():
        deps = task.get("dependentTasks") or []
        mine = results.get(name)
        if not deps or not mine or name not in times or any(not results.get(d) or d not in times for d in deps):
            continue
        last = max(deps, key=lambda d: float(results[d]["finished_at"]))  # type: ignore[index]
        finish_to_exit.append((times[last].exited + offset - float(results[last]["finished_at"])) * 1000)  # type: ignore[index]
        submit_to_launcher.append((float(mine["started_at"]) - times[name].submit_returned - offset) * 1000)
    return finish_to_exit, submit_to_launcher


def measure_standalone(backend: str, repeat: int, poll: float = 0.1) -> dict[str, list[float]]:
    from google.protobuf import json_format

    from stepwell.v1 import common_pb2

    result: dict[str, list[float]] = {"files": []}
    with database(backend) as url, scheduler_process(url) as scheduler:
        assert scheduler.work_dir is not None
        for name, spec, arguments, expected in pipelines():
            for i in range(repeat + 1):
                run_id = scheduler.start_run(spec, arguments)
                try:
                    status = scheduler.wait(run_id, timeout=300, poll=poll)
                except TimeoutError:
                    raise RuntimeError(f"{name} did not end in 300 s\n" + "".join(scheduler.lines[-20:])) from None
                outputs = json_format.MessageToDict(status.outputs.parameters)
                if status.state != common_pb2.SUCCEEDED or outputs.get("Output") != expected:
                    state = common_pb2.RuntimeState.Name(status.state)
                    raise RuntimeError(f"{name} ended {state}: {status.error}\n" + "".join(scheduler.lines[-20:]))
                if not i:
                    continue  # warm-up
                result["files"] += result_file_overheads(scheduler.work_dir, run_id, spec)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--poll", type=float, default=0.1, help="seconds between the client's GetRun calls")
    parser.add_argument(
        "--standalone",
        action="store_true",
        help="run stepwell-scheduler as its own process and time the links from the result files",
    )
    args = parser.parse_args()
    quiet()
    print(f"{machine()}, {git_revision()}, client polls every {args.poll:g} s")
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    for backend in backends:
        print(settle())
        if backend == "postgres":
            print(postgres_round_trip())
        if args.standalone:
            r = measure_standalone(backend, args.repeat, args.poll)
            print(
                f"\n{backend}, scheduler in its own process: {len(r['files'])} tasks with upstream tasks "
                f"(chain-10 and diamond-6, x{args.repeat})"
            )
            total = r["files"]
        else:
            r = measure(backend, args.repeat, args.poll)
            print(f"\n{backend}: {len(r['total'])} tasks with upstream tasks (chain-10 and diamond-6, x{args.repeat})")
            print(f"  upstream exit -> submit (engine):      {summary(r['engine'])}")
            print(f"  submit -> process started (executor):  {summary(r['start'])}")
            print(f"  exit -> downstream started (total):    {summary(r['total'])}")
            for key in sorted(k for k in r if k.startswith("total ")):
                # A chain's links and a fan-out's (whose tasks share one submit) differ.
                print(f"    of which {key[6:]:10s}                {summary(r[key])}")
            total = r["total"]
        print(f"  upstream finished -> downstream started (result files): {summary(r['files'])}")
        if not args.standalone:
            print("    = upstream finished_at -> exit reported + total + submit returned -> started_at, where")
            print(f"    upstream finished_at -> exit reported:  {summary(r['finish_to_exit'])}")
            print(f"    submit returned -> downstream started_at: {summary(r['submit_to_launcher'])}")
        print(f"  {RESULT_NOTE}")
        print(f"  target: median under 5 ms -> {'met' if total and statistics.median(total) < 5 else 'missed'}")
        print(f"  after: {machine_speed()}")


if __name__ == "__main__":
    main()
