"""(d) Peak scheduler memory during a run of many tasks.

    .venv/bin/python benchmarks/memory.py [--tasks 10000] [--form dag|loop] [--backend sqlite|postgres]

Runs ``stepwell-scheduler`` as its own process (with a metadata service and a stub API
peer in this process) and drives it over gRPC with one run of ``--tasks`` no-op tasks
(``dag``: independent tasks; ``loop``: one ParallelFor). Samples the scheduler's resident
memory every 0.2 s and reports its peak (``VmHWM``), and the fork server's.
"""

import argparse
import contextlib
import os
import threading
import time

from common import (
    database,
    kfp_spec,
    machine,
    peak_rss_mb,
    quiet,
    rss_mb,
    scheduler_process,
)
from parallel_for import dag_spec, loop_pipeline


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=10000)
    parser.add_argument("--form", choices=["dag", "loop"], default="dag")
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--timeout", type=float, default=3600)
    args = parser.parse_args()
    quiet()
    spec = dag_spec(args.tasks) if args.form == "dag" else kfp_spec(loop_pipeline(args.tasks))
    print(machine())
    with database(args.backend) as url, scheduler_process(url) as scheduler:
        idle = rss_mb(scheduler.pid)
        samples: list[tuple[float, float]] = []
        stop = threading.Event()

        def sample() -> None:
            t0 = time.monotonic()
            while not stop.wait(0.2):
                with contextlib.suppress(OSError):
                    samples.append((time.monotonic() - t0, rss_mb(scheduler.pid)))

        threading.Thread(target=sample, daemon=True).start()
        cpu0, own0 = cpu_seconds(scheduler.pid), os.times()
        t0 = time.perf_counter()
        run_id = scheduler.start_run(spec)
        status = scheduler.wait(run_id, timeout=args.timeout)
        elapsed = time.perf_counter() - t0
        cpu1, own1 = cpu_seconds(scheduler.pid), os.times()
        stop.set()
        peak = peak_rss_mb(scheduler.pid)
        fork_pid = scheduler.fork_server_pid()
        fork_peak = peak_rss_mb(fork_pid) if fork_pid else 0.0
        done = sum(1 for t in status.task_details if t.state == status.state)
        print(
            f"{args.tasks} tasks ({args.form}, {args.backend}): run {status.state and 'ended'} state={status.state} "
            f"in {elapsed:.1f} s; {done} tasks in the final state"
        )
        own = own1.user + own1.system - own0.user - own0.system
        print(
            f"CPU per task: scheduler process {(cpu1 - cpu0) / args.tasks * 1000:.2f} ms; "
            f"this process (metadata service, stub API) {own / args.tasks * 1000:.2f} ms"
        )
        print(f"scheduler RSS: idle {idle:.0f} MiB, peak {peak:.0f} MiB; fork server peak {fork_peak:.0f} MiB")
        if samples:
            step = max(1, len(samples) // 10)
            print("RSS over time (s: MiB): " + ", ".join(f"{t:.0f}: {m:.0f}" for t, m in samples[::step]))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (its own threads, not its children)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    main()
