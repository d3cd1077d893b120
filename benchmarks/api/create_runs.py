"""CreateRun throughput over gRPC with concurrent clients.

    .venv/bin/python benchmarks/api/create_runs.py [--clients 16] [--runs 3000]

The API service runs as its own process (``stepwell-api``) on a scratch Postgres
database; the scheduler is a stand-in that acknowledges StartRun at once, so what is
measured is the API service: validating the spec and parameters, the Default
experiment, writing the run, handing it over and reading it back. Each client thread
has its own channel and calls CreateRun back to back. Target: >= 300 runs/s.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
from google.protobuf import json_format

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

from stepwell.v1 import run_pb2, run_pb2_grpc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3000, help="total CreateRun calls (after a warm-up)")
    parser.add_argument("--profile", metavar="OUT", help="record the API process with py-spy into OUT "
                        "(.svg flame graph, or .txt for collapsed stacks)")
    args = parser.parse_args()

    request = run_pb2.CreateRunRequest(run=run_pb2.Run(display_name="bench"))
    json_format.ParseDict(SPEC, request.run.pipeline_spec)
    request.run.runtime_config.parameters["msg"].string_value = "hello"

    with (
        scratch_database() as url,
        ack_scheduler() as (fake, scheduler),
        tempfile.TemporaryDirectory() as home,
        api_process(url, scheduler, Path(home)) as address,
    ):
        wait_ready(address)
        channels = [grpc.insecure_channel(address) for _ in range(args.clients)]
        stubs = [run_pb2_grpc.RunServiceStub(c) for c in channels]
        for stub in stubs:  # warm-up: connections, the Default experiment, caches
            stub.CreateRun(request, timeout=30)
        per_client = args.runs // args.clients
        latencies: list[list[float]] = [[] for _ in stubs]
        errors: list[BaseException] = []
        barrier = threading.Barrier(args.clients + 1)

        def client(index: int) -> None:
            barrier.wait()
            try:
                for _ in range(per_client):
                    started = time.perf_counter()
                    reply = stubs[index].CreateRun(request, timeout=30)
                    latencies[index].append(time.perf_counter() - started)
                    assert reply.state == 1  # PENDING
            except BaseException as err:  # reported below
                errors.append(err)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
        for t in threads:
            t.start()
        profiler = None
        if args.profile:
            fmt = "raw" if args.profile.endswith(".txt") else "flamegraph"
            profiler = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--pid",
                                         str(address.pid), "--format", fmt, "--output", args.profile,
                                         "--rate", "250", "--nonblocking", *(["--gil"] if os.environ.get("PYSPY_GIL") else [])], stderr=subprocess.DEVNULL)
            time.sleep(1.0)
        barrier.wait()
        cpu_before = address.cpu_seconds()
        started = time.perf_counter()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
        cpu = address.cpu_seconds() - cpu_before
        if profiler is not None:
            profiler.send_signal(2)  # SIGINT: py-spy writes its output
            profiler.wait(30)
        for c in channels:
            c.close()
    if errors:
        raise SystemExit(f"{len(errors)} client(s) failed: {errors[0]!r}")
    total = per_client * args.clients
    flat = [x for lat in latencies for x in lat]
    print(machine())
    print(f"CreateRun: {total} runs by {args.clients} concurrent clients in {elapsed:.2f}s "
          f"= {total / elapsed:.0f} runs/s; latency p50 {percentile(flat, 50) * 1000:.1f} ms, "
          f"p95 {percentile(flat, 95) * 1000:.1f} ms; scheduler acknowledged {fake.started}; "
          f"API process CPU {cpu / total * 1000:.2f} ms per run")


if __name__ == "__main__":
    main()
