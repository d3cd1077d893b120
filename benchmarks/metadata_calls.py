"""What the engine's metadata calls cost: CreateExecutions + FinishExecutions per task.

    .venv/bin/python benchmarks/metadata_calls.py [--backend sqlite|postgres] [--batch 1] [--artifact] [--calls 200]

A metadata service on loopback (in this process, as in the embedded stack) and the
scheduler's own client: each iteration creates ``--batch`` executions in one call and
finishes them in another (``--artifact``: each with one output artifact), as the engine
does for tasks that start and end together. Reports the wall time per pair of calls and
per task, after 20 warm-up pairs.
"""

import argparse
import tempfile
import time

from common import database, machine, quiet

from stepwell_metadata.app import MetadataApp
from stepwell_scheduler.metadata_client import ExecutionEnd, ExecutionStart, MetadataClient


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--batch", type=int, default=1, help="executions per call")
    parser.add_argument("--artifact", action="store_true", help="one output artifact per execution")
    parser.add_argument("--calls", type=int, default=200, help="pairs of calls timed")
    args = parser.parse_args()
    quiet()
    print(machine())
    with database(args.backend) as url, tempfile.TemporaryDirectory() as folder:
        app = MetadataApp(database_url=url or f"sqlite:///{folder}/metadata.db")
        server = app.start(port=0, host="127.0.0.1")
        client = MetadataClient(lambda: server.address)
        try:
            contexts = list(client.run_contexts("bench", "run-1", "/tmp/bench-root", ""))

            def pair(n: int) -> None:
                starts = [
                    ExecutionStart(
                        "system.ContainerExecution",
                        f"task-{n}-{i}",
                        contexts,
                        {"x": i},
                        {"display_name": f"task-{n}-{i}", "attempt": 1, "run_id": "run-1"},
                    )
                    for i in range(args.batch)
                ]
                ids = client.start_executions(starts)
                artifacts = (
                    {"model": [{"uri": f"/tmp/bench-root/{n}/{i}", "schema_title": "system.Model", "size": 1}]}
                    for i in range(args.batch)
                )
                client.finish_executions(
                    [
                        ExecutionEnd(eid, "SUCCEEDED", {"Output": n}, next(artifacts) if args.artifact else {}, contexts)
                        for eid in ids
                    ]
                )

            for n in range(20):
                pair(-1 - n)
            t0 = time.perf_counter()
            for n in range(args.calls):
                pair(n)
            elapsed = (time.perf_counter() - t0) / args.calls * 1000
        finally:
            client.close()
            app.stop()
    what = f"{args.batch} execution(s) per call{' with an output artifact each' if args.artifact else ''}"
    print(
        f"{args.backend}, {what}: CreateExecutions + FinishExecutions {elapsed:.2f} ms per pair, "
        f"{elapsed / args.batch:.2f} ms per task"
    )


if __name__ == "__main__":
    main()
