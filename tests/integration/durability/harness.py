"""Durability tests' tools: a counting pipeline, scheduler processes, and the checks.

Every task of :func:`counting_pipeline` appends ``<run id> <task>`` to one shared log
the moment its user command starts, so the log counts real executions, independent of
what the scheduler believes. :class:`Ledger` snapshots the scheduler's task table at
each kill and checks, at the end, that

* a task that had SUCCEEDED at a kill never executed again afterwards;
* every task executed at most once more than the number of kills that found it RUNNING
  (claimed by a scheduler) — a kill never re-runs anything else;
* in the metadata service each task has exactly one successful (or cached) execution,
  every other execution of it is a FAILED lost attempt, and every artifact URI is
  recorded once, with its OUTPUT event.
"""

from __future__ import annotations

import collections
import os
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from sqlalchemy import create_engine, text

from stepwell.server import make_channel
from stepwell.v1 import (
    common_pb2,
    metadata_pb2,
    metadata_pb2_grpc,
    scheduler_pb2,
    scheduler_pb2_grpc,
)
from tests.processes import ServiceProcess, start_service

COUNT = r"""
import os, sys, time
log, run_id, name, seconds, prev, out_param, out_art = sys.argv[1:8]
fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
os.write(fd, f"{run_id} {name}\n".encode())
os.close(fd)
time.sleep(float(seconds))
for path, text in ((out_param, name), (out_art, f"{run_id} {name} after {prev}")):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
"""

DATASET = {"schemaTitle": "system.Dataset", "schemaVersion": "0.0.1"}
FINAL = (common_pb2.SUCCEEDED, common_pb2.FAILED, common_pb2.CANCELED)

#: task -> (upstream whose output it takes, other upstream tasks); ten tasks, four levels wide.
SHAPE: dict[str, tuple[str, list[str]]] = {
    "t0": ("", []),
    "t1": ("t0", []),
    "t2": ("t0", []),
    "t3": ("t0", []),
    "t4": ("t1", ["t2"]),
    "t5": ("t3", []),
    "t6": ("t4", ["t5"]),
    "t7": ("t6", []),
    "t8": ("t6", []),
    "t9": ("t8", ["t7"]),
}
#: Tasks without the run's salt input: their inputs repeat across runs, so later runs
#: reuse them from the cache.
PLAIN = {"t2", "t5"}


def counting_pipeline(log_file: str, seconds: float = 0.25) -> dict[str, Any]:
    """Ten argv container tasks; each logs its start, sleeps, writes a parameter and an artifact."""

    def executor(salted: bool) -> dict[str, Any]:
        return {
            "container": {
                "image": "python:3.11",
                "command": ["python3", "-c", COUNT],
                "args": [
                    log_file,
                    "{{$.pipeline_job_name}}",
                    "{{$.inputs.parameters['me']}}",
                    str(seconds),
                    "{{$.inputs.parameters['prev']}}" + ("{{$.inputs.parameters['salt']}}" if salted else ""),
                    "{{$.outputs.parameters['out'].output_file}}",
                    "{{$.outputs.artifacts['data'].path}}",
                ],
            }
        }

    def component(salted: bool) -> dict[str, Any]:
        params = {"me": {"parameterType": "STRING"}, "prev": {"parameterType": "STRING"}}
        if salted:
            params["salt"] = {"parameterType": "STRING"}
        return {
            "executorLabel": "exec-salted" if salted else "exec-plain",
            "inputDefinitions": {"parameters": params},
            "outputDefinitions": {
                "parameters": {"out": {"parameterType": "STRING"}},
                "artifacts": {"data": {"artifactType": DATASET}},
            },
        }

    tasks: dict[str, Any] = {}
    for name, (source, after) in SHAPE.items():
        salted = name not in PLAIN
        inputs: dict[str, Any] = {
            "me": {"runtimeValue": {"constant": name}},
            "prev": (
                {"taskOutputParameter": {"producerTask": source, "outputParameterKey": "out"}}
                if source
                else {"runtimeValue": {"constant": "start"}}
            )
        }
        if salted:
            inputs["salt"] = {"componentInputParameter": "salt"}
        tasks[name] = {
            "taskInfo": {"name": name},
            "componentRef": {"name": "comp-salted" if salted else "comp-plain"},
            "inputs": {"parameters": inputs},
            "dependentTasks": sorted({*after, *([source] if source else [])}),
            "cachingOptions": {"enableCache": True},
        }
    return {
        "pipelineInfo": {"name": "durable-count"},
        "schemaVersion": "2.1.0",
        "deploymentSpec": {"executors": {"exec-salted": executor(True), "exec-plain": executor(False)}},
        "components": {"comp-salted": component(True), "comp-plain": component(False)},
        "root": {
            "inputDefinitions": {"parameters": {"salt": {"parameterType": "STRING"}}},
            "dag": {"tasks": tasks},
        },
    }


def executions(log_file: Path) -> collections.Counter[tuple[str, str]]:
    """How often each (run id, task) started, from the tasks' own log."""
    if not log_file.exists():
        return collections.Counter()
    return collections.Counter(
        tuple(line.split(" ", 1)) for line in log_file.read_text().splitlines() if line  # type: ignore[misc]
    )


class Scheduler:
    """One ``stepwell-scheduler`` process and a stub to it."""

    def __init__(self, env: dict[str, str]) -> None:
        # With a failpoint set, it may die at it before it says it listens.
        killed_by = "failpoint" if env.get("STEPWELL_SCHEDULER_FAILPOINTS") else ""
        self.service: ServiceProcess = start_service("scheduler", ["--port", "0"], env, killed_by=killed_by)
        self.channel = make_channel(self.service.address)
        self.stub = scheduler_pb2_grpc.SchedulerStub(self.channel)

    @property
    def pid(self) -> int:
        return self.service.proc.pid

    def start_run(self, run_id: str, spec: dict[str, Any], salt: str) -> bool:
        """Sends StartRun; True when the run had been started already."""
        request = scheduler_pb2.StartRunRequest(run_id=run_id)
        json_format.ParseDict(spec, request.pipeline_spec)
        json_format.ParseDict({"salt": salt}, request.parameters)
        return bool(self.stub.StartRun(request, timeout=30).already_started)

    def cancel(self, run_id: str) -> None:
        self.stub.CancelRun(scheduler_pb2.CancelRunRequest(run_id=run_id), timeout=10)

    def status(self, run_id: str) -> scheduler_pb2.RunStatus:
        return self.stub.GetRunStatus(scheduler_pb2.GetRunStatusRequest(run_id=run_id), timeout=10)

    def wait(self, run_ids: Iterable[str], timeout: float = 60) -> dict[str, scheduler_pb2.RunStatus]:
        deadline = time.monotonic() + timeout
        pending = set(run_ids)
        done: dict[str, scheduler_pb2.RunStatus] = {}
        while pending:
            for run_id in sorted(pending):
                status = self.status(run_id)
                if status.state in FINAL:
                    done[run_id] = status
                    pending.discard(run_id)
            if pending and time.monotonic() > deadline:
                raise TimeoutError(f"runs still going: {sorted(pending)}")
            time.sleep(0.05)
        return done

    def wait_killed(self, timeout: float = 30) -> None:
        """Until the process ends, which must be by SIGKILL (a failpoint's)."""
        deadline = time.monotonic() + timeout
        while self.service.proc.poll() is None:
            assert time.monotonic() < deadline, self.log()
            time.sleep(0.05)
        assert self.service.proc.returncode == -signal.SIGKILL, self.log()

    def kill(self, sig: int = signal.SIGKILL) -> None:
        self.service.proc.send_signal(sig)
        if sig == signal.SIGKILL:
            self.service.proc.wait(10)
            self.close()

    def close(self) -> None:
        self.channel.close()
        self.service.stop()

    def log(self) -> str:
        return "".join(self.service.log)


@dataclass
class Ledger:
    """Task states at each kill, and the checks of the whole story."""

    db_url: str
    log_file: Path
    #: (states by (run, task) at the kill, executions counted then)
    kills: list[tuple[dict[tuple[str, str], str], collections.Counter[tuple[str, str]]]] = field(default_factory=list)

    def states(self) -> dict[tuple[str, str], str]:
        engine = create_engine(self.db_url)
        try:
            with engine.connect() as conn:
                rows = conn.execute(text("SELECT run_id, qualified_name, state FROM sched_tasks")).all()
        finally:
            engine.dispose()
        return {(r[0], r[1]): r[2] for r in rows}

    def snapshot(self) -> None:
        """Call right after a kill (or while the only live scheduler is stopped)."""
        self.kills.append((self.states(), executions(self.log_file)))

    def check(self, runs: dict[str, scheduler_pb2.RunStatus]) -> collections.Counter[tuple[str, str]]:
        """Asserts the story's invariants; returns the final execution counts."""
        final = executions(self.log_file)
        for run_id, status in runs.items():
            assert status.state == common_pb2.SUCCEEDED, f"{run_id}: {status.error}"
            cached = set(status.cached_task_ids)
            assert {t.task_id for t in status.task_details} == set(SHAPE)
            for task in SHAPE:
                key = (run_id, task)
                running_at_kills = sum(1 for states, _ in self.kills if states.get(key) == "RUNNING")
                if task in cached:
                    assert final[key] == 0, f"{key} was a cache hit yet executed {final[key]} times"
                else:
                    assert 1 <= final[key] <= 1 + running_at_kills, (
                        f"{key} executed {final[key]} times; RUNNING at {running_at_kills} kills"
                    )
                for states, counted in self.kills:
                    if states.get(key) == "SUCCEEDED":
                        assert final[key] == counted[key], f"{key} had finished at a kill, then ran again"
        return final

    def reruns(self) -> int:
        final = executions(self.log_file)
        return sum(n - 1 for n in final.values() if n > 1)


def check_metadata(md_address: str, runs: dict[str, scheduler_pb2.RunStatus]) -> None:
    """One successful (or cached) execution per task, lost attempts FAILED, each artifact once."""
    with make_channel(md_address) as channel:
        stub = metadata_pb2_grpc.MetadataStub(channel)
        for run_id, status in runs.items():
            ctx = stub.GetContext(metadata_pb2.GetContextRequest(type="system.PipelineRun", name=run_id), timeout=10)
            found = stub.GetExecutions(metadata_pb2.GetExecutionsRequest(context_id=ctx.id), timeout=10).executions
            by_task: dict[str, list[Any]] = collections.defaultdict(list)
            for execution in found:
                by_task[execution.name].append(execution)
            for detail in status.task_details:
                states = [e.state for e in by_task[detail.task_id]]
                good = [e for e in by_task[detail.task_id] if e.state in (metadata_pb2.Execution.COMPLETE, metadata_pb2.Execution.CACHED)]
                assert len(good) == 1, f"{run_id}/{detail.task_id}: executions in states {states}"
                assert good[0].id == detail.execution_id
                others = [s for s in states if s not in (metadata_pb2.Execution.COMPLETE, metadata_pb2.Execution.CACHED)]
                assert all(s == metadata_pb2.Execution.FAILED for s in others), f"{run_id}/{detail.task_id}: {states}"
                refs = detail.outputs.artifacts["data"].artifacts
                assert len(refs) == 1 and refs[0].artifact_id, f"{run_id}/{detail.task_id}: {refs}"
                assert os.path.exists(refs[0].uri), refs[0].uri
                events = stub.GetEvents(metadata_pb2.GetEventsRequest(execution_ids=[good[0].id]), timeout=10).events
                outputs = [e.artifact_id for e in events if e.type == metadata_pb2.Event.OUTPUT]
                assert outputs == [refs[0].artifact_id], f"{run_id}/{detail.task_id}: OUTPUT events {outputs}"
            artifacts = stub.GetArtifacts(metadata_pb2.GetArtifactsRequest(context_id=ctx.id), timeout=10).artifacts
            uris = collections.Counter(a.uri for a in artifacts)
            assert all(n == 1 for n in uris.values()), f"artifacts recorded twice: {[u for u, n in uris.items() if n > 1]}"
