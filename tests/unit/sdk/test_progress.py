"""The CLI's live progress view (``stepwell.cli.progress``) with runs of many tasks."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest

from stepwell.cli import progress
from stepwell.client.types import Run, TaskDetail

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _runs(items: int, steps: int) -> Iterator[Run]:
    """A loop of ``items`` tasks finishing a share each step; the last run succeeded."""
    for step in range(1, steps + 1):
        done = items * step // steps
        tasks = []
        for i in range(items):
            state = "SUCCEEDED" if i < done else "RUNNING" if i < done + 2 else "PENDING"
            end = T0 + timedelta(seconds=i) if state == "SUCCEEDED" else None
            tasks.append(TaskDetail(task_id=f"loop[{i}]/noop", display_name="noop", state=state, start_time=T0, end_time=end))
        yield Run(run_id="r1", display_name="r1", state="SUCCEEDED" if step == steps else "RUNNING", pipeline_name="p", tasks=tasks)


def test_a_terminal_shows_a_bounded_table_with_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINES", "20")
    monkeypatch.setenv("COLUMNS", "100")
    out = Terminal()
    final = progress.follow(_runs(2000, 3), out)
    assert final.state == "SUCCEEDED"
    last_frame = out.getvalue().rsplit("run r1 · p ·", 1)[1]
    assert "SUCCEEDED" in last_frame.splitlines()[0]
    assert "2000 tasks: 2000 succeeded" in last_frame
    assert "… 1985 more" in last_frame  # the 15 tasks that ended last are shown
    assert "loop[1999]/noop" in last_frame and "loop[0]/noop" not in last_frame
    # Title, header, 15 tasks, the "more" row and the counts: it fits the screen.
    assert len(last_frame.removesuffix("\x1b[?25h").splitlines()) == 19


def test_a_small_run_shows_every_task(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINES", "40")
    out = Terminal()
    progress.follow(_runs(5, 2), out)
    last_frame = out.getvalue().rsplit("run r1 · p ·", 1)[1]
    assert all(f"loop[{i}]/noop" in last_frame for i in range(5))
    assert "more" not in last_frame and "tasks:" not in last_frame


def test_a_pipe_gets_one_line_per_change() -> None:
    out = io.StringIO()
    progress.follow(_runs(4, 2), out)
    lines = out.getvalue().splitlines()
    assert lines[0] == "run r1 of p: running"
    # Step 1: two succeeded, two running; step 2: the two running ones succeeded.
    assert sum("loop[" in line for line in lines) == 6
    assert "✓ loop[3]/noop succeeded (3.00s)" in lines
