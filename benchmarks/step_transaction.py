"""What the engine's step transaction costs on Postgres, with and without its shortcuts.

    .venv/bin/python benchmarks/step_transaction.py [--steps 300] [--widths 1,4]

The transaction of a chain's link (``--widths 1``: end the upstream row, insert the
claimed downstream row) or of a fan-out (``4``: four claimed rows), as the engine writes
it (``engine.direct.DirectRows``), on a scratch Postgres database with nothing else
running: the run taken as read before, the rows written, the commit. Five ways, one step
of each in turn: ``whole`` (the engine's way: new rows' ids taken ahead, so the statement
checks itself and its BEGIN, write and COMMIT go in one round trip), ``fenced+prepared``
(ids read back: the COMMIT a round trip of its own), ``fenced`` (also the write sent as
text), ``locked+prepared`` and ``locked`` (the run read and locked first, the driver's
BEGIN and COMMIT: the engine before the tenth round). Reports the median wall time of a
step, in ms.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

from common import machine, machine_speed, postgres_round_trip, quiet, scratch_postgres
from sqlalchemy import select, update

from stepwell.server import Database
from stepwell_scheduler.app import migrate
from stepwell_scheduler.engine.direct import DirectRows
from stepwell_scheduler.engine.fences import FENCING
from stepwell_scheduler.models import PENDING, RUNNING, SUCCEEDED, RunRow, TaskRow

#: (fencing, prepared, ids ahead)
MODES = {
    "whole": (True, True, True),
    "fenced+prepared": (True, True, False),
    "fenced": (True, False, False),
    "locked+prepared": (False, True, False),
    "locked": (False, False, False),
}
STAMP = datetime.now(timezone.utc)


def _task(run_id: str, name: str, **values: Any) -> TaskRow:
    fields: dict[str, Any] = {
        "run_id": run_id, "qualified_name": name, "name": name, "kind": "container", "component": "comp-add",
        "state": PENDING, "inputs": {"parameters": {"a": 1, "b": 2}, "artifacts": {}}, "ready_at": STAMP,
        "task_dir": f"/tmp/work/runs/{run_id}/tasks/{name}/a1", "log_uri": f"/tmp/artifacts/{run_id}/{name}/a1/log",
    }
    return TaskRow(**{**fields, **values})


def _new_run(db: Database) -> tuple[str, TaskRow]:
    """A running run with one running task, and that task's row as the engine keeps it."""
    run_id = uuid.uuid4().hex
    with db.session() as s:
        s.add(RunRow(
            run_id=run_id, pipeline_name="p", spec={}, parameters={"n": 3}, pipeline_root="/tmp", state=RUNNING,
            created_at=STAMP, options={}, lease_owner="bench", lease_expires_at=STAMP + timedelta(hours=1),
        ))
        s.add(_task(run_id, "upstream", state=RUNNING, attempt=1))
    with db.session() as s:
        return run_id, s.scalars(select(TaskRow).where(TaskRow.run_id == run_id)).one()


def _step(db: Database, direct: DirectRows, run_id: str, kept: TaskRow, width: int, step: int) -> None:
    with db.session() as s:
        s.info[FENCING] = True
        direct.lock_run(s, run_id)
        ended = s.merge(kept, load=False)
        ended.state, ended.outputs, ended.finished_at = SUCCEEDED, {"parameters": {"Output": 3}}, STAMP
        for i in range(width):
            s.add(_task(run_id, f"next-{step}-{i}", state=RUNNING, attempt=1, started_at=STAMP))
        direct.flush(s, commit=True)


def measure(url: str, width: int, steps: int) -> dict[str, float]:
    db = Database(url)
    migrate(db.engine)
    runs, directs, times = {}, {}, {}
    for mode, (fencing, prepare, _ahead) in MODES.items():
        directs[mode] = DirectRows(db.engine)
        directs[mode].fencing, directs[mode].prepare = fencing, prepare
        runs[mode] = _new_run(db)
        times[mode] = []
        with db.session() as s:
            directs[mode].lock_run(s, runs[mode][0])  # as read at an earlier step
    for step in range(steps + 10):
        for mode, (_fencing, _prepare, ahead) in MODES.items():
            run_id, kept = runs[mode]
            if ahead:
                directs[mode].refill_ids(db)  # as the engine does after a step, untimed
            start = time.perf_counter()
            _step(db, directs[mode], run_id, kept, width, step)
            if step >= 10:  # warm-up: statements prepared, plans cached
                times[mode].append((time.perf_counter() - start) * 1000)
            with db.session() as s:  # the upstream row running again, untimed
                s.execute(update(TaskRow).where(TaskRow.id == kept.id).values(state=RUNNING))
    db.dispose()
    return {mode: statistics.median(values) for mode, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--widths", default="1,4", help="claimed rows per step, comma-separated")
    args = parser.parse_args()
    quiet()
    print(machine())
    print(machine_speed())
    print(postgres_round_trip())
    with scratch_postgres() as url:
        for width in (int(w) for w in args.widths.split(",")):
            medians = measure(url, width, args.steps)
            shown = ", ".join(f"{mode} {ms:.2f}" for mode, ms in medians.items())
            print(f"step transaction, {width} claimed row(s), median of {args.steps} (ms): {shown}")


if __name__ == "__main__":
    main()
