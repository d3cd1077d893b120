"""``kill -9`` of the scheduler at many points of runs, then restarts: every run completes,
no finished task runs again, a running one runs at most once more, nothing recorded twice.

Real ``stepwell-scheduler`` processes and real signals. Two stories: one crashes the
scheduler deterministically between each pair of steps that must survive a crash together
(failpoints, on SQLite: the single-scheduler set-up), the other kills it at random moments
while three runs share it (on Postgres).
"""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import grpc
import pytest

from tests.integration.durability.conftest import Peers
from tests.integration.durability.harness import (
    FINAL,
    Ledger,
    Scheduler,
    check_metadata,
    counting_pipeline,
)

pytestmark = pytest.mark.slow

# Each incarnation of the scheduler dies at one crash point (the n-th time it passes it).
PHASE_ONE = [
    "claimed@2",
    "execution-created@2",
    "attempt-stored@2",
    "submitted@2",
    "outputs-recorded@2",
    "task-finished@2",
    "advanced@3",
]
# The second run reuses two tasks from the first run's cache.
PHASE_TWO = ["cache-recorded", "submitted@2", "outputs-recorded@2", "task-finished"]


def _until_dead_or_done(scheduler: Scheduler, run_ids: list[str], timeout: float = 40) -> bool:
    """Waits until the scheduler process dies (True) or every run is final (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if scheduler.service.proc.poll() is not None:
            return True
        try:
            if all(scheduler.status(r).state in FINAL for r in run_ids):
                return False
        except grpc.RpcError:
            continue
        time.sleep(0.05)
    raise TimeoutError(scheduler.log())


def test_crash_between_every_pair_of_steps(sqlite_peers: Peers, tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'scheduler.db'}"
    log_file = tmp_path / "executions.log"
    spec = counting_pipeline(str(log_file), seconds=0.2)
    ledger = Ledger(db_url, log_file)
    hit: list[str] = []

    def story(failpoints: list[str], run_id: str) -> None:
        for i, failpoint in enumerate(failpoints):
            scheduler = Scheduler(sqlite_peers.env(db_url, STEPWELL_SCHEDULER_FAILPOINTS=failpoint))
            try:
                if i == 0:
                    scheduler.start_run(run_id, spec, salt=run_id)
                died = _until_dead_or_done(scheduler, [run_id])
                if died:
                    assert scheduler.service.proc.returncode == -signal.SIGKILL
                    name = failpoint.partition("@")[0]
                    deadline = time.monotonic() + 5  # the pipe is drained by a thread
                    while f"failpoint {name} reached" not in scheduler.log():
                        assert time.monotonic() < deadline, scheduler.log()
                        time.sleep(0.05)
                    hit.append(failpoint)
                else:
                    scheduler.kill()  # the run ended first: an idle kill point
            finally:
                scheduler.close()
            ledger.snapshot()
        # One clean incarnation finishes the run, then is killed while idle.
        scheduler = Scheduler(sqlite_peers.env(db_url))
        try:
            scheduler.wait([run_id])
            scheduler.kill()
        finally:
            scheduler.close()
        ledger.snapshot()

    story(PHASE_ONE, "run-a")
    story(PHASE_TWO, "run-b")
    scheduler = Scheduler(sqlite_peers.env(db_url))
    try:
        runs = scheduler.wait(["run-a", "run-b"])
    finally:
        scheduler.close()
    assert set(runs["run-b"].cached_task_ids) == {"t2", "t5"}
    ledger.check(runs)
    check_metadata(sqlite_peers.md_address, runs)
    # Every crash point was reached (the first run is long enough for each; the second
    # run may end before its last ones).
    assert hit[: len(PHASE_ONE) + 1] == [*PHASE_ONE, "cache-recorded"], hit
    assert len(hit) >= len(PHASE_ONE) + 2, hit


@pytest.mark.postgres
def test_kill_9_at_random_moments(pg_peers: Peers, fresh_pg_url: str, tmp_path: Path) -> None:
    log_file = tmp_path / "executions.log"
    spec = counting_pipeline(str(log_file), seconds=0.25)
    ledger = Ledger(fresh_pg_url, log_file)
    env = pg_peers.env(fresh_pg_url)
    # Three runs start with the first incarnation, three more with the seventh.
    batches = {0: ["run-1", "run-2", "run-3"], 6: ["run-4", "run-5", "run-6"]}
    rng = random.Random(20250105)
    for i in range(12):
        scheduler = Scheduler(env)
        try:
            for run_id in batches.get(i, []):
                scheduler.start_run(run_id, spec, salt=run_id)
            time.sleep(rng.uniform(0.0, 0.8))
            scheduler.kill()
        finally:
            scheduler.close()
        ledger.snapshot()
    scheduler = Scheduler(env)
    try:
        runs = scheduler.wait([r for batch in batches.values() for r in batch])
    finally:
        scheduler.close()
    # Most kills found tasks running: the story exercised re-attachment and requeueing.
    assert sum(1 for states, _ in ledger.kills if "RUNNING" in states.values()) >= 6
    ledger.check(runs)
    check_metadata(pg_peers.md_address, runs)
