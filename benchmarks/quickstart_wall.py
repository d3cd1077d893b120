"""Wall time of `stepwell run examples/quickstart.py`, as a user sees it.

    .venv/bin/python benchmarks/quickstart_wall.py [--repeat 5]

Each run uses a fresh STEPWELL_HOME, so it includes interpreter start, the embedded
stack's start (three SQLite databases created and migrated), the three tasks, and exit.
A second figure reruns in the same home with --no-cache (databases already there).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STEPWELL = str(Path(sys.executable).parent / "stepwell")


def timed(home: str, *extra: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        [STEPWELL, "run", str(ROOT / "examples" / "quickstart.py"), *extra],
        env={**os.environ, "STEPWELL_HOME": home},
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    fresh, warm = [], []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as home:
            fresh.append(timed(home))
            warm.append(timed(home, "--no-cache"))
    print(f"{os.uname().machine}, nproc={os.cpu_count()}, load {os.getloadavg()[0]:.1f}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    for label, samples in (("fresh home", fresh), ("existing home, --no-cache", warm)):
        print(f"quickstart wall time, {label}: median {statistics.median(samples):.2f} s (min {min(samples):.2f}, max {max(samples):.2f}, n={len(samples)})")


if __name__ == "__main__":
    main()
