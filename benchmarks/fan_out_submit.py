"""What starting a fan-out costs the engine: one ``submit_many`` of four task processes.

    .venv/bin/python benchmarks/fan_out_submit.py [--backend sqlite|postgres] [--runs 10]

Runs diamond-6 (one task, four in parallel, one after them) ``--runs`` times on the
embedded stack, after a warm-up run, with the scheduler's executor wrapped from outside
the engine (as ``engine_overhead.py`` does): the wall time of each ``submit_many`` call
that starts four processes, in ms. Each of the four goes to a waiting spare of the fork
server (see docs/engine.md, Processes); a spare that takes the CPU from the scheduler
when the hand-over wakes it makes the call slow.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from common import (
    database,
    embedded_stack,
    kfp_spec,
    machine,
    machine_speed,
    pct,
    quiet,
    run_and_wait,
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="postgres")
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    quiet()
    print(machine())
    print(machine_speed())
    import shared_pipelines

    pipeline, arguments, _expected = shared_pipelines.PIPELINES["diamond-6"]
    spec = kfp_spec(pipeline)
    fan_outs: list[float] = []
    with database(args.backend) as url, embedded_stack(url) as (stack, client, _clock):
        scheduler = next(app for app in stack._apps if type(app).__name__ == "SchedulerApp")
        executor = scheduler.executor
        submit_many = executor.submit_many
        measuring = [False]

        def timed(requests: Any) -> Any:
            start = time.monotonic()
            results = submit_many(requests)
            if measuring[0] and len(requests) == 4:
                fan_outs.append((time.monotonic() - start) * 1000)
            return results

        executor.submit_many = timed
        run_and_wait(client, spec, arguments, poll=0.1)  # warm-up
        measuring[0] = True
        for _ in range(args.runs):
            run, _ = run_and_wait(client, spec, arguments, poll=0.1)
            if run.state != "SUCCEEDED":
                raise RuntimeError(f"diamond-6 ended {run.state}: {run.error}")
    slow = sum(1 for ms in fan_outs if ms > 2.0)
    print(
        f"{args.backend}: submit_many of 4 processes, median {statistics.median(fan_outs):.2f} ms, "
        f"p90 {pct(fan_outs, 0.9):.2f}, max {max(fan_outs):.2f} (n={len(fan_outs)}); over 2 ms: {slow}"
    )
    print("after:", machine_speed())


if __name__ == "__main__":
    main()
