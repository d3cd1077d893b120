"""Two ``stepwell-scheduler`` processes on one Postgres database.

Both alive: StartRun reaches either one, each drives the runs it accepted, and every task
executes exactly once. ``kill -9`` of one mid-run: the other takes its runs over (at once,
since the dead one ran on the same host) and finishes them. ``SIGSTOP`` of one mid-run:
it is alive but silent, so the other takes over only when the leases expire; woken up
again (``SIGCONT``), the stalled one finds it lost the runs and changes nothing.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from google.protobuf import json_format
from sqlalchemy import create_engine, text

from stepwell.v1 import common_pb2, scheduler_pb2
from tests.integration.durability.conftest import Peers
from tests.integration.durability.harness import (
    Ledger,
    Scheduler,
    check_metadata,
    counting_pipeline,
    executions,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def _query(url: str, sql: str) -> list[tuple[object, ...]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql)).all()]
    finally:
        engine.dispose()


def _owners(url: str, prefix: str) -> set[object]:
    return {r[0] for r in _query(url, f"SELECT lease_owner FROM sched_runs WHERE run_id LIKE '{prefix}%'")}


def _wait_running(ledger: Ledger, run_ids: list[str], timeout: float = 20) -> None:
    """Until some task of each run is RUNNING."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = ledger.states()
        if all(any(s == "RUNNING" for (r, _), s in states.items() if r == run) for run in run_ids):
            return
        time.sleep(0.05)
    raise TimeoutError(f"no task of {run_ids} started")


def test_two_schedulers_share_work_and_take_over(pg_peers: Peers, fresh_pg_url: str, tmp_path: Path) -> None:
    log_file = tmp_path / "executions.log"
    spec = counting_pipeline(str(log_file), seconds=0.2)
    ledger = Ledger(fresh_pg_url, log_file)
    env = pg_peers.env(fresh_pg_url)
    a, b = Scheduler(env), Scheduler(env)
    finished = {}
    try:
        # 1. Both alive: runs arrive at either; each task runs exactly once.
        shared = [f"shared-{i}" for i in range(6)]
        for i, run_id in enumerate(shared):
            (a if i % 2 == 0 else b).start_run(run_id, spec, salt=run_id)
        # The API may hand a run to the other scheduler too (a retry): it is started once.
        assert b.start_run(shared[0], spec, salt=shared[0])
        # CancelRun may reach the scheduler that does not drive the run.
        b.start_run("canceled", spec, salt="canceled")
        _wait_running(ledger, ["canceled"])
        a.cancel("canceled")
        assert a.wait(["canceled"])["canceled"].state == common_pb2.CANCELED
        finished.update(a.wait(shared))
        counts = ledger.check(finished)
        assert all(n == 1 for n in counts.values()), counts
        owners = _query(fresh_pg_url, "SELECT DISTINCT lease_owner FROM sched_runs")
        workers = _query(fresh_pg_url, "SELECT DISTINCT worker FROM sched_tasks WHERE worker <> ''")
        assert len(owners) == 2 and len(workers) == 2, (owners, workers)

        # 2. kill -9 of one while both have runs going: the survivor finishes all of them.
        killed = [f"killed-{i}" for i in range(4)]
        for i, run_id in enumerate(killed):
            (a if i % 2 == 0 else b).start_run(run_id, spec, salt=run_id)
        _wait_running(ledger, killed)
        b.kill()
        ledger.snapshot()
        finished.update(a.wait(killed))
        ledger.check(finished)

        # 3. SIGSTOP of one: taken over once its leases expire; woken, it changes nothing.
        b = Scheduler(env)
        stalled = [f"stalled-{i}" for i in range(2)]
        for run_id in stalled:
            b.start_run(run_id, spec, salt=run_id)
        _wait_running(ledger, stalled)
        stalled_owner = _owners(fresh_pg_url, "stalled-")
        b.kill(signal.SIGSTOP)
        stopped_at = time.monotonic()
        ledger.snapshot()
        try:
            while _owners(fresh_pg_url, "stalled-") == stalled_owner:
                assert time.monotonic() - stopped_at < 20, "the stalled scheduler's runs were never taken over"
                time.sleep(0.05)
            took = time.monotonic() - stopped_at
            finished.update(a.wait(stalled))
        finally:
            b.kill(signal.SIGCONT)
        # The lease is 1.5 s, renewed every 0.5 s: it ran out 1.0-1.5 s after the stop.
        assert 0.9 < took < 5, took
        before = executions(log_file)
        time.sleep(1.5)  # the woken scheduler notices at its next heartbeat
        assert executions(log_file) == before
        assert b.service.proc.poll() is None, b.log()
        assert "no longer holds run stalled-" in b.log()
        assert "taking over run stalled-0" in a.log() and "taking over run killed-1" in a.log()
        ledger.check(finished)
        check_metadata(pg_peers.md_address, finished)
    finally:
        a.close()
        b.close()


def test_a_scheduler_stalled_before_recording_an_attempt_leaves_one_execution(
    pg_peers: Peers, fresh_pg_url: str, tmp_path: Path
) -> None:
    """The stalled scheduler started a task but stopped before recording its execution;
    the other took the run over, harvested the task and recorded it under an execution
    of its own. Woken, the stalled one records its execution late: it closes it FAILED
    rather than ending it COMPLETE from what it remembers (one successful execution per
    task)."""
    log_file = tmp_path / "executions.log"
    spec = counting_pipeline(str(log_file), seconds=0.2)
    ledger = Ledger(fresh_pg_url, log_file)
    a = Scheduler(pg_peers.env(fresh_pg_url))
    b = Scheduler(pg_peers.env(fresh_pg_url, STEPWELL_SCHEDULER_FAILPOINTS="submitted:stop"))
    try:
        b.start_run("stalled", spec, salt="stalled")
        deadline = time.monotonic() + 20
        while "failpoint submitted reached: stopping" not in b.log():
            assert time.monotonic() < deadline, b.log()
            time.sleep(0.05)
        finished = a.wait(["stalled"], timeout=60)
        assert finished["stalled"].state == common_pb2.SUCCEEDED, a.log()
        assert "taking over run stalled" in a.log()
        b.kill(signal.SIGCONT)
        deadline = time.monotonic() + 10
        while "no longer holds run stalled" not in b.log():
            assert time.monotonic() < deadline, b.log()
            time.sleep(0.05)
        time.sleep(1.0)  # the task's exit reaches it too: had it recorded it, it did by now
        assert b.service.proc.poll() is None, b.log()
        ledger.check(finished)
        check_metadata(pg_peers.md_address, finished)
    finally:
        a.close()
        b.close()


def test_a_run_taken_over_keeps_its_deadline(pg_peers: Peers, fresh_pg_url: str, tmp_path: Path) -> None:
    """The scheduler that takes a run over enforces its deadline, although it had no
    deadline or backoff of its own to watch (its timers were off)."""
    log_file = tmp_path / "executions.log"
    spec = counting_pipeline(str(log_file), seconds=60)
    ledger = Ledger(fresh_pg_url, log_file)
    env = pg_peers.env(fresh_pg_url)
    taker = Scheduler(env)  # idle: nothing to time
    owner = Scheduler(env)
    try:
        request = scheduler_pb2.StartRunRequest(run_id="deadline-1", options=scheduler_pb2.RunOptions(timeout_seconds=3))
        json_format.ParseDict(spec, request.pipeline_spec)
        json_format.ParseDict({"salt": "deadline-1"}, request.parameters)
        owner.stub.StartRun(request, timeout=30)
        _wait_running(ledger, ["deadline-1"])
        owner.kill()
        # Taken over at the taker's next heartbeat; without its timers, the first task
        # would sleep its 60 s and the run go on for ten of them.
        status = taker.wait(["deadline-1"], timeout=40)["deadline-1"]
        assert status.state == common_pb2.FAILED, status
        assert "timed out" in status.error, status.error
    finally:
        owner.close()
        taker.close()
