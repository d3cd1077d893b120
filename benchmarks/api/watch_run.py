"""Watching a large run: GetRun and ReportRunStatus cost with thousands of tasks.

    .venv/bin/python benchmarks/api/watch_run.py [--tasks 2000] [--calls 100] [--changed 4]

Creates a scratch Postgres database, starts ``stepwell-api`` as its own process, creates
one run and reports ``--tasks`` tasks for it (each with times, an execution id, an
output parameter and an output artifact), then times, over gRPC and end to end:

- GetRun as a plain client asks for it (every task, the pipeline spec);
- GetRun as a watcher asks for it (``tasks_after_version`` = the version before the
  last report, ``omit_pipeline_spec``): only the tasks the last report changed; and
  the same asked after the latest version (a poll while nothing changed);
- a full status report (every task) in which ``--changed`` tasks changed, what the
  scheduler sent before partial reports;
- a partial status report of only the ``--changed`` changed tasks.

Besides latency it prints the API process's CPU time per call (from ``/proc``), which
moves much less with the machine's load than latency does. Against a server without
partial reports and versioned GetRun the "watcher" rows measure a full GetRun, and the
partial reports (timed last) replace the task list.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format

sys.path.insert(0, str(Path(__file__).resolve().parent))

from support import (
    SPEC,
    ApiProcess,
    ack_scheduler,
    api_process,
    machine,
    percentile,
    scratch_database,
)

from stepwell.v1 import common_pb2, run_pb2, run_pb2_grpc

S = common_pb2.RuntimeState
START = datetime(2026, 1, 1, tzinfo=timezone.utc)


def task_detail(index: int, state: int, tick: int) -> run_pb2.TaskDetail:
    """Task ``index`` of a ParallelFor, as the scheduler reports it at ``tick``."""
    task = run_pb2.TaskDetail(
        task_id=f"for-loop-1/echo[{index}]",
        display_name="echo",
        state=state,
        execution_id=1000 + index,
        parent_task_id="for-loop-1",
        kind="container",
        log_uri=f"file:///tmp/root/bench/run/echo-{index}/log.txt",
    )
    task.create_time.FromDatetime(START)
    task.start_time.FromDatetime(START + timedelta(seconds=1))
    if state == S.SUCCEEDED:
        task.end_time.FromDatetime(START + timedelta(seconds=2 + tick))
        task.outputs.parameters["Output"] = f"out-{index}-{tick}"
        task.outputs.artifacts["model"].artifacts.add(
            uri=f"file:///tmp/root/bench/run/echo-{index}/model", artifact_id=5000 + index, schema_title="system.Model"
        )
    return task


def report(run_id: str, tasks: list[run_pb2.TaskDetail], tick: int, partial: bool) -> run_pb2.ReportRunStatusRequest:
    request = run_pb2.ReportRunStatusRequest(run_id=run_id, state=S.RUNNING, task_details=tasks, partial=partial)
    request.update_time.FromDatetime(START + timedelta(seconds=tick))
    return request


def timed(
    address: ApiProcess, calls: int, call: Callable[[Any], Any], prepare: Callable[[int], Any] = lambda i: i
) -> tuple[list[float], float]:
    """Latencies of ``calls`` calls and the API process's CPU seconds per call. Each
    call's argument is made by ``prepare`` beforehand, outside the timing."""
    for argument in [prepare(-1 - i) for i in range(5)]:  # warm-up
        call(argument)
    arguments = [prepare(i) for i in range(calls)]
    cpu = address.cpu_seconds()
    times = []
    for argument in arguments:
        started = time.perf_counter()
        call(argument)
        times.append(time.perf_counter() - started)
    return times, (address.cpu_seconds() - cpu) / calls


def line(name: str, times: list[float], cpu: float, note: str = "") -> None:
    print(f"  {name:58s} p50 {percentile(times, 50) * 1000:7.1f} ms  p95 {percentile(times, 95) * 1000:7.1f} ms  "
          f"API CPU {cpu * 1000:7.2f} ms/call{note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--calls", type=int, default=100, help="timed calls per shape")
    parser.add_argument("--changed", type=int, default=4, help="tasks changed per report")
    args = parser.parse_args()
    with (
        scratch_database() as url,
        ack_scheduler() as (_, scheduler),
        tempfile.TemporaryDirectory() as home,
        api_process(url, scheduler, Path(home)) as address,
        grpc.insecure_channel(address, options=[("grpc.max_receive_message_length", 256 * 1024 * 1024)]) as channel,
    ):
        stub = run_pb2_grpc.RunServiceStub(channel)
        create = run_pb2.CreateRunRequest(run=run_pb2.Run(display_name="watched"))
        json_format.ParseDict(SPEC, create.run.pipeline_spec)
        run_id = stub.CreateRun(create, timeout=30).run_id
        states = [S.RUNNING] * args.tasks
        tick = 1
        stub.ReportRunStatus(report(run_id, [task_detail(i, s, 0) for i, s in enumerate(states)], tick, False),
                             timeout=60)
        cursor = 0  # the next task to finish

        def change() -> list[int]:
            """Finishes the next ``--changed`` tasks (wrapping round); their indexes."""
            nonlocal cursor, tick
            tick += 1
            changed = [(cursor + k) % args.tasks for k in range(args.changed)]
            cursor = (cursor + args.changed) % args.tasks
            for index in changed:
                states[index] = S.SUCCEEDED
            return changed

        print(machine())
        print(f"one run with {args.tasks} tasks, {args.changed} changed per report, {args.calls} calls per shape:")
        change()  # a full report, so a server without partial reports keeps every task
        stub.ReportRunStatus(report(run_id, [task_detail(i, s, tick) for i, s in enumerate(states)], tick, False),
                             timeout=60)
        version = stub.GetRun(run_pb2.GetRunRequest(run_id=run_id), timeout=60).status_version

        full_times, full_cpu = timed(
            address, args.calls, lambda _: stub.GetRun(run_pb2.GetRunRequest(run_id=run_id), timeout=60))
        line("GetRun, every task and the spec", full_times, full_cpu)
        sizes: list[int] = []

        def watch(_: int) -> None:
            reply = stub.GetRun(run_pb2.GetRunRequest(
                run_id=run_id, tasks_after_version=max(version - 1, 1), omit_pipeline_spec=True), timeout=60)
            sizes.append(len(reply.task_details))

        watch_times, watch_cpu = timed(address, args.calls, watch)
        line("GetRun, tasks_after_version + omit_pipeline_spec", watch_times, watch_cpu,
             f"  ({sizes[-1]} tasks in the reply)")

        def idle(_: int) -> None:
            reply = stub.GetRun(run_pb2.GetRunRequest(
                run_id=run_id, tasks_after_version=max(version, 1), omit_pipeline_spec=True), timeout=60)
            sizes.append(len(reply.task_details))

        idle_times, idle_cpu = timed(address, args.calls, idle)
        line("GetRun, the same, nothing changed since", idle_times, idle_cpu, f"  ({sizes[-1]} tasks in the reply)")

        def full_report(_: int) -> run_pb2.ReportRunStatusRequest:
            change()
            return report(run_id, [task_detail(i, s, tick) for i, s in enumerate(states)], tick, False)

        def send(request: run_pb2.ReportRunStatusRequest) -> None:
            stub.ReportRunStatus(request, timeout=60)

        times, cpu = timed(address, args.calls, send, full_report)
        line(f"ReportRunStatus, full ({args.tasks} tasks, {args.changed} changed)", times, cpu)

        def partial_report(_: int) -> run_pb2.ReportRunStatusRequest:
            changed = change()
            return report(run_id, [task_detail(i, states[i], tick) for i in changed], tick, True)

        times, cpu = timed(address, args.calls, send, partial_report)
        line(f"ReportRunStatus, partial ({args.changed} tasks)", times, cpu)
        final = stub.GetRun(run_pb2.GetRunRequest(run_id=run_id, omit_pipeline_spec=True), timeout=60)
        print(f"  after the partial reports GetRun lists {len(final.task_details)} tasks "
              f"(status_version {final.status_version})")


if __name__ == "__main__":
    main()
