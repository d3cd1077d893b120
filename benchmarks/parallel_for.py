"""(b) A 1,000-iteration ParallelFor of a no-op component, on the embedded stack.

    .venv/bin/python benchmarks/parallel_for.py [--items 1000] [--form loop|dag] [--backend sqlite|postgres]

``--form loop`` (default): ``with dsl.ParallelFor(items=[0..N-1]) as i: noop(x=i)``,
compiled by the real kfp compiler. ``--form dag``: N independent ``noop`` tasks in one
DAG (for an engine without loops). Reports the wall time from ``create_run`` to the
run's end, tasks per second, and the executor's process-start times. Parallelism is the
scheduler's default (``STEPWELL_MAX_PARALLEL_TASKS``: 4 x cores, at least 16) unless set.
"""



import argparse
import os
import statistics
from typing import Any

from common import (
    database,
    embedded_stack,
    kfp_spec,
    machine,
    machine_speed,
    quiet,
    run_and_wait,
    settle,
    summary,
)
from kfp import dsl
from shared_pipelines import noop


def loop_pipeline(items: int) -> Any:
    @dsl.pipeline(name=f"parallel-for-{items}")
    def pipeline() -> None:
        with dsl.ParallelFor(items=list(range(items))) as item:
            noop(x=item)

    return pipeline


def dag_spec(items: int) -> dict[str, Any]:
    """N independent tasks: the loop's body, unrolled (kfp compiles it in seconds)."""
    spec = kfp_spec(_one_task)
    tasks = spec["root"]["dag"]["tasks"]
    (_name, template), = tasks.items()
    tasks.clear()
    for i in range(items):
        task = json_copy(template)
        task["taskInfo"] = {"name": f"noop-{i}"}
        task["inputs"]["parameters"]["x"] = {"runtimeValue": {"constant": i}}
        tasks[f"noop-{i}"] = task
    spec["pipelineInfo"]["name"] = f"independent-{items}"
    return spec


@dsl.pipeline(name="one")
def _one_task() -> None:
    noop(x=0)


def json_copy(value: Any) -> Any:
    import json

    return json.loads(json.dumps(value))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--form", choices=["loop", "dag"], default="loop")
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    quiet()
    spec = kfp_spec(loop_pipeline(args.items)) if args.form == "loop" else dag_spec(args.items)
    print(machine())
    parallel = os.environ.get("STEPWELL_MAX_PARALLEL_TASKS", f"default ({max(16, (os.cpu_count() or 1) * 4)})")
    print(f"{args.items} no-op tasks as {args.form}, backend {args.backend}, max parallel tasks {parallel}")
    print(settle())
    walls = []
    before = os.times()
    with database(args.backend) as url, embedded_stack(url) as (_stack, client, clock):
        for _ in range(args.repeat):
            clock.times.clear()
            run, elapsed = run_and_wait(client, spec, timeout=1800, poll=0.1)
            if run.state != "SUCCEEDED":
                raise RuntimeError(f"the run ended {run.state}: {run.error}")
            processes = len(clock.times)
            if processes < args.items:
                raise RuntimeError(f"only {processes} task processes ran")
            walls.append(elapsed)
            starts = [(t.submit_returned - t.submit_called) * 1000 for t in clock.times.values()]
            print(
                f"wall {elapsed:.2f} s ({args.items / elapsed:.0f} tasks/s); task processes {processes}; "
                # A step's tasks start in one submit_many call: each counts the whole call.
                f"executor submit (the call that started it, for its whole batch): {summary(starts)}",
                flush=True,
            )
    after = os.times()
    own = after.user + after.system - before.user - before.system
    children = after.children_user + after.children_system - before.children_user - before.children_system
    tasks = args.items * args.repeat
    print(
        f"CPU: this process (services, engine, client) {own:.2f} s = {own / tasks * 1000:.1f} ms per task; "
        f"fork server and task processes {children:.2f} s = {children / tasks * 1000:.1f} ms per task"
    )
    print(f"median wall {statistics.median(walls):.2f} s (target: under 10 s for 1,000 tasks on 2 cores)")
    print(f"after: {machine_speed()}")


if __name__ == "__main__":
    main()
