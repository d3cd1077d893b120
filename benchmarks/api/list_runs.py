"""ListRuns latency with 100,000 runs in Postgres: pages of 100, filtered and sorted.

    .venv/bin/python benchmarks/api/list_runs.py [--runs 100000] [--calls 200]

Creates a scratch database, brings it to the API service's schema, bulk-inserts the
runs directly (10 experiments, a mix of states, creation times over 30 days, a real
IR per run), runs ANALYZE, then starts ``stepwell-api`` as its own process and times
ListRuns over gRPC, end to end as a client sees it. Target: p95 < 50 ms.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import grpc
from sqlalchemy import create_engine, insert, text

sys.path.insert(0, str(Path(__file__).resolve().parent))

from support import (
    SPEC,
    ack_scheduler,
    api_process,
    machine,
    percentile,
    scratch_database,
    wait_ready,
)

from stepwell.server import Database, upgrade
from stepwell.v1 import run_pb2, run_pb2_grpc
from stepwell_api.app import MIGRATIONS_DIR, VERSION_TABLE
from stepwell_api.models import ExperimentRow, RunRow

STATES = ["SUCCEEDED"] * 6 + ["FAILED"] * 2 + ["RUNNING", "CANCELED"]


def populate(url: str, runs: int, seed: int = 1) -> list[str]:
    """Schema plus ``runs`` runs; returns the experiment ids."""
    db = Database(url)
    upgrade(db.engine, MIGRATIONS_DIR, VERSION_TABLE)
    db.dispose()
    rng = random.Random(seed)
    now = datetime.now(timezone.utc)
    experiments = [str(uuid.uuid4()) for _ in range(10)]
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(insert(ExperimentRow.__table__), [
            {"experiment_id": e, "display_name": f"exp-{i}", "description": "", "namespace": "",
             "storage_state": "AVAILABLE", "created_at": now - timedelta(days=31)}
            for i, e in enumerate(experiments)
        ])
        batch = []
        for i in range(runs):
            created = now - timedelta(seconds=rng.uniform(0, 30 * 86400))
            state = rng.choice(STATES)
            batch.append({
                "run_id": str(uuid.uuid4()), "display_name": f"run-{i}", "description": "", "namespace": "",
                "experiment_id": rng.choice(experiments), "pipeline_name": "bench", "pipeline_spec": SPEC,
                "platform_spec": {}, "parameters": {"msg": f"m{i}"}, "pipeline_root": "", "state": state,
                "error": "", "outputs": {}, "created_at": created, "scheduled_at": created,
                "finished_at": None if state == "RUNNING" else created + timedelta(seconds=30),
                "handed_at": created, "handover_attempts": 0, "storage_state": "AVAILABLE",
                "recurring_run_id": "", "pipeline_id": "", "pipeline_version_id": "", "service_account": "",
            })
            if len(batch) == 5000:
                conn.execute(insert(RunRow.__table__), batch)
                batch = []
        if batch:
            conn.execute(insert(RunRow.__table__), batch)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE api_runs"))
    engine.dispose()
    return experiments


def eq(key: str, value: str) -> str:
    return json.dumps({"predicates": [{"key": key, "operation": "EQUALS", "string_value": value}]})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=200, help="timed calls per query shape")
    args = parser.parse_args()
    with scratch_database() as url, ack_scheduler() as (_, scheduler), tempfile.TemporaryDirectory() as home:
        started = time.perf_counter()
        experiments = populate(url, args.runs)
        print(f"inserted {args.runs} runs in {time.perf_counter() - started:.1f}s", file=sys.stderr)
        with api_process(url, scheduler, Path(home)) as address:
            wait_ready(address)
            with grpc.insecure_channel(address) as channel:
                stub = run_pb2_grpc.RunServiceStub(channel)
                shapes = {
                    "state=SUCCEEDED, created_at desc": lambda _: run_pb2.ListRunsRequest(
                        page_size=100, sort_by="created_at desc", filter=eq("state", "SUCCEEDED")),
                    "experiment_id=X, created_at desc": lambda i: run_pb2.ListRunsRequest(
                        page_size=100, sort_by="created_at desc", experiment_id=experiments[i % 10]),
                    "state=FAILED, experiment filter, created_at asc": lambda i: run_pb2.ListRunsRequest(
                        page_size=100, sort_by="created_at", experiment_id=experiments[i % 10],
                        filter=eq("state", "FAILED")),
                    "no filter, default sort (newest first)": lambda _: run_pb2.ListRunsRequest(page_size=100),
                }
                print(machine())
                print(f"ListRuns over gRPC, {args.runs} runs, page of 100, {args.calls} calls per shape:")
                for name, make in shapes.items():
                    for i in range(10):  # warm-up
                        stub.ListRuns(make(i), timeout=30)
                    times = []
                    for i in range(args.calls):
                        t = time.perf_counter()
                        reply = stub.ListRuns(make(i), timeout=30)
                        times.append(time.perf_counter() - t)
                        assert len(reply.runs) == 100
                    print(f"  {name:50s} p50 {percentile(times, 50) * 1000:6.1f} ms  "
                          f"p95 {percentile(times, 95) * 1000:6.1f} ms  (total_size {reply.total_size})")
                # Paging deep with tokens: 20 consecutive pages of one filtered listing.
                times, token = [], ""
                for _ in range(20):
                    t = time.perf_counter()
                    reply = stub.ListRuns(run_pb2.ListRunsRequest(
                        page_size=100, sort_by="created_at desc", filter=eq("state", "SUCCEEDED"), page_token=token), timeout=30)
                    times.append(time.perf_counter() - t)
                    token = reply.next_page_token
                print(f"  {'state=SUCCEEDED, pages 1-20 by page_token':50s} p50 {percentile(times, 50) * 1000:6.1f} ms  "
                      f"p95 {percentile(times, 95) * 1000:6.1f} ms")


if __name__ == "__main__":
    main()
