"""A run with one running task ("r1", its task "kept"), the rows the engine's row-level
tests (direct writes, fences) start from."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from stepwell.server import Database
from stepwell_scheduler.models import PENDING, RUNNING, RunRow, TaskRow

STAMP = datetime(2026, 11, 29, 6, 30, 1, 123456, tzinfo=timezone.utc)


def seed(db: Database) -> None:
    """Run "r1" (held by "me"), with its task "kept" running."""
    with db.session() as s:
        s.add(
            RunRow(
                run_id="r1", pipeline_name="p", spec={"big": "spec"}, parameters={"n": 3},
                pipeline_root="/tmp/r1", state=RUNNING, created_at=STAMP, options={"disable_cache": True},
                lease_owner="me", lease_expires_at=STAMP + timedelta(seconds=30),
            )
        )
        s.add(task("kept", state=RUNNING, pid=42, attempt=1))


def task(name: str, **values: Any) -> TaskRow:
    """A task row of run "r1" (queued unless ``values`` say otherwise)."""
    fields: dict[str, Any] = {
        "run_id": "r1", "qualified_name": name, "name": name, "kind": "container", "component": "comp-x",
        "state": PENDING, "inputs": {"parameters": {"n": 3, "xs": [1, 2.5, None], "s": "é"}}, "ready_at": STAMP,
    }
    return TaskRow(**{**fields, **values})
