"""(a) The same KFP pipelines on kfp.local and on Stepwell, side by side.

    .venv/bin/python benchmarks/kfp_vs_stepwell.py [--repeat 3] [--stepwell-sdk]

The pipelines in ``shared_pipelines.py`` (plain DAGs of KFP lightweight Python components)
run on:

* kfp.local: ``local.init(runner=local.SubprocessRunner(use_venv=False))``, then calling
  the pipeline function (kfp 2.17.3 as installed);
* Stepwell: the pipeline compiled to YAML by the real ``kfp`` compiler, unchanged, run on
  the embedded stack (all services in this process, SQLite, a local artifact folder; what
  ``stepwell run`` starts), from ``create_run`` to the run's final state.

Both check the pipeline's output. Each cell is the median of ``--repeat`` runs after one
warm-up run. ``--stepwell-sdk`` compiles the same source with Stepwell's own SDK instead
(``from stepwell import dsl``), for an engine that cannot run kfp-compiled components.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import BENCH, embedded_stack, kfp_spec, machine, quiet, run_and_wait


def _stepwell_sdk_module() -> Any:
    """``shared_pipelines`` with ``from kfp import dsl`` swapped for Stepwell's SDK."""
    source = (BENCH / "shared_pipelines.py").read_text().replace("from kfp import dsl", "from stepwell import dsl")
    folder = Path(tempfile.mkdtemp())
    path = folder / "shared_pipelines_stepwell.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("shared_pipelines_stepwell", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def time_kfp_local(pipeline: Any, arguments: dict[str, Any], expected: Any, repeat: int) -> list[float]:
    import contextlib
    import io

    from kfp import local

    times = []
    with tempfile.TemporaryDirectory() as root:
        local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=root)
        for i in range(repeat + 1):
            t0 = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                task = pipeline(**arguments)
            elapsed = time.perf_counter() - t0
            if task.output != expected:
                raise RuntimeError(f"kfp.local: {pipeline} gave {task.output!r}, expected {expected!r}")
            if i:
                times.append(elapsed)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--stepwell-sdk", action="store_true", help="compile with Stepwell's SDK, not kfp's")
    args = parser.parse_args()
    quiet()
    import shared_pipelines

    sdk_module = _stepwell_sdk_module() if args.stepwell_sdk else None
    print(machine())
    how = "Stepwell SDK" if args.stepwell_sdk else "kfp 2.17.3 compiler, unchanged IR"
    print(f"Stepwell runs: {how}; median of {args.repeat} runs after a warm-up, seconds\n")
    print(f"{'pipeline':<11} {'tasks':>5} {'kfp.local':>10} {'Stepwell':>9} {'ratio':>7}")
    ratios = []
    with embedded_stack() as (_stack, client, _clock):
        for name, (pipeline, arguments, expected) in shared_pipelines.PIPELINES.items():
            local_times = time_kfp_local(pipeline, arguments, expected, args.repeat)
            if sdk_module is not None:
                from stepwell import compiler

                spec = compiler.compile_to_dict(sdk_module.PIPELINES[name][0])
            else:
                spec = kfp_spec(pipeline)
            ours = []
            for i in range(args.repeat + 1):
                run, elapsed = run_and_wait(client, spec, arguments)
                if run.state != "SUCCEEDED" or run.outputs.parameters.get("Output") != expected:
                    raise RuntimeError(f"Stepwell: {name} ended {run.state}: {run.error} {run.outputs.parameters}")
                if i:
                    ours.append(elapsed)
            tasks = len(spec["root"]["dag"]["tasks"])
            ratio = statistics.median(local_times) / statistics.median(ours)
            ratios.append(ratio)
            print(
                f"{name:<11} {tasks:>5} {statistics.median(local_times):10.3f} {statistics.median(ours):9.3f} {ratio:6.1f}x",
                flush=True,
            )
    print(f"\nsmallest ratio {min(ratios):.1f}x (target: at least 10x on every pipeline)")


if __name__ == "__main__":
    main()
