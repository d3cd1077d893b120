"""(c) Engine overhead per task, on SQLite and on Postgres.

    .venv/bin/python benchmarks/engine_overhead.py [--backend sqlite|postgres|both] [--repeat 3]

Runs kfp-compiled pipelines of no-op lightweight components (``chain-10``: ten tasks in a
line; ``diamond-6``: one → four → one) on the embedded stack and times, from outside the
engine, every task process through the scheduler's executor:

* upstream exit → submit: the executor reported the last upstream process's exit; the
  engine then harvested it (result file, metadata, database), advanced the DAG, resolved
  inputs, checked the cache, wrote the task file and called ``submit`` — all engine work;
* submit → started: ``submit`` returned (the task's process exists);
* exit → downstream started: the sum, the issue's "process exit → downstream started"
  (equal to "dependencies satisfied → process started" plus the harvest of the upstream).

``--backend postgres`` uses a scratch database on ``$STEPWELL_BENCH_PG_URL``
(default ``postgresql+psycopg2://postgres@127.0.0.1:5432/test``), created and dropped here.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
from collections.abc import Iterator

from common import embedded_stack, kfp_spec, machine, quiet, run_and_wait, scratch_postgres, summary


@contextlib.contextmanager
def database(backend: str) -> Iterator[str]:
    if backend == "postgres":
        with scratch_postgres() as url:
            yield url
    else:
        yield ""


def measure(backend: str, repeat: int) -> dict[str, list[float]]:
    import shared_pipelines

    pipelines = {"chain-10": shared_pipelines.chain_ten, "diamond-6": shared_pipelines.diamond}
    result: dict[str, list[float]] = {"engine": [], "start": [], "total": [], "wall_per_task": []}
    with database(backend) as url, embedded_stack(url) as (_stack, client, clock):
        for name, pipeline in pipelines.items():
            spec = kfp_spec(pipeline)
            _, _, expected = shared_pipelines.PIPELINES[name]
            for i in range(repeat + 1):
                run, _ = run_and_wait(client, spec, poll=0.05)
                if run.state != "SUCCEEDED" or run.outputs.parameters.get("Output") != expected:
                    raise RuntimeError(f"{name} ended {run.state}: {run.error}")
                if not i:
                    continue  # warm-up
                engine, start, total = clock.overheads(run.run_id, spec)
                result["engine"] += engine
                result["start"] += start
                result["total"] += total
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    quiet()
    print(machine())
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    for backend in backends:
        r = measure(backend, args.repeat)
        print(f"\n{backend}: {len(r['total'])} tasks with upstream tasks (chain-10 and diamond-6, x{args.repeat})")
        print(f"  upstream exit -> submit (engine):      {summary(r['engine'])}")
        print(f"  submit -> process started (executor):  {summary(r['start'])}")
        print(f"  exit -> downstream started (total):    {summary(r['total'])}")
        print(f"  target: median under 5 ms -> {'met' if statistics.median(r['total']) < 5 else 'missed'}")


if __name__ == "__main__":
    main()
