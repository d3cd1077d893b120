"""Live progress of a run on stderr: a table that redraws on a terminal, one line per change otherwise."""

from __future__ import annotations

import heapq
import itertools
import threading
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import IO

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.live import Live
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from stepwell.client.types import Run, TaskDetail

_STYLE = {
    "SUCCEEDED": "green",
    "FAILED": "red",
    "RUNNING": "yellow",
    "PENDING": "dim",
    "SKIPPED": "cyan",
    "CANCELED": "magenta",
    "CANCELING": "magenta",
}
#: States whose tasks a truncated table always tries to show.
_URGENT = frozenset({"RUNNING", "CANCELING", "FAILED"})
_EPOCH = datetime.min.replace(tzinfo=timezone.utc)
_MARK = {"SUCCEEDED": "✓", "FAILED": "✗", "RUNNING": "▶", "SKIPPED": "-", "CANCELED": "■"}


def _seconds(start: datetime | None, end: datetime | None) -> str:
    if start is None:
        return ""
    if end is None:
        end = datetime.now(start.tzinfo)
    return f"{(end - start).total_seconds():.2f}s"


def _table(run: Run, limit: int) -> RenderableType:
    """The run's tasks as a table of at most ``limit`` task rows. A bigger run shows its
    running and failed tasks, then the ones that ended last, then the next pending ones
    (in run order), and the number of tasks in each state below."""
    tasks = run.tasks
    hidden = 0
    if len(tasks) > limit:
        room = limit - 1  # the "more" row
        picked = [i for i, t in enumerate(tasks) if t.state in _URGENT][:room]
        ended = [i for i, t in enumerate(tasks) if t.end_time is not None and t.state not in _URGENT]
        picked += heapq.nlargest(room - len(picked), ended, key=lambda i: tasks[i].end_time or _EPOCH)
        taken = set(picked)
        picked += itertools.islice((i for i in range(len(tasks)) if i not in taken), room - len(picked))
        hidden = len(tasks) - len(picked)
        tasks = [tasks[i] for i in sorted(picked)]
    table = Table(
        title=f"run {run.run_id} · {run.pipeline_name} · {run.state}", title_justify="left", box=None
    )
    table.add_column("task")
    table.add_column("state")
    table.add_column("time", justify="right")
    for task in tasks:
        style = _STYLE.get(task.state, "")
        state = f"{task.state} (cached)" if task.cached else task.state
        table.add_row(task.task_id, f"[{style}]{state}[/]", _seconds(task.start_time, task.end_time))
    if not hidden:
        return table
    table.add_row(f"[dim]… {hidden} more[/]", "", "")
    counts = Counter(t.state for t in run.tasks)
    summary = f"{len(run.tasks)} tasks: " + ", ".join(f"{n} {state.lower()}" for state, n in sorted(counts.items()))
    return Group(table, Text(summary, style="dim"))


class _Board:
    """The live view's content: the newest table, rendered once per change however
    often the view redraws (rendering a table costs far more than drawing its lines)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._table: RenderableType | None = None
        self._lines: tuple[int, list[Segment]] | None = None

    def show(self, table: RenderableType) -> None:
        with self._lock:
            self._table, self._lines = table, None

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        with self._lock:
            if self._table is None:
                return
            if self._lines is None or self._lines[0] != options.max_width:
                self._lines = (options.max_width, list(console.render(self._table, options)))
            lines = self._lines[1]
        yield from lines


def _line(task: TaskDetail) -> str:
    mark = _MARK.get(task.state, "·")
    if task.cached:
        return f"{mark} {task.task_id} {task.state.lower()} (cached)"
    took = _seconds(task.start_time, task.end_time) if task.state not in ("PENDING", "RUNNING") else ""
    return f"{mark} {task.task_id} {task.state.lower()}" + (f" ({took})" if took else "")


def follow(runs: Iterable[Run], stream: IO[str]) -> Run:
    """Shows each update of ``runs`` on ``stream`` and returns the last one."""
    console = Console(file=stream, highlight=False)
    last: Run | None = None
    if console.is_terminal:
        board = _Board()
        # Redrawn a few times a second (and once more when it stops), from what the
        # newest update showed; updates in between cost only building the table.
        with Live(board, console=console, refresh_per_second=4, transient=False):
            for run in runs:
                # Title, header and the line of counts take the rest of the screen.
                board.show(_table(run, max(5, console.height - 4)))
                last = run
    else:
        seen: dict[str, str] = {}
        for run in runs:
            if last is None:
                console.print(f"run {run.run_id} of {run.pipeline_name}: {run.state.lower()}", markup=False)
            for task in run.tasks:
                if seen.get(task.task_id) != task.state:
                    seen[task.task_id] = task.state
                    console.print(_line(task), markup=False)
            last = run
    if last is None:
        raise RuntimeError("the run disappeared before its first update")
    return last


def report_failure(run: Run, stream: IO[str]) -> None:
    """Names the failed tasks and shows the tail of each one's log."""
    console = Console(file=stream, highlight=False)
    failed = [t for t in run.tasks if t.state == "FAILED" and t.kind != "dag"] or [
        t for t in run.tasks if t.state == "FAILED"
    ]
    console.print(f"run {run.run_id} {run.state}" + (f": {run.error}" if run.error else ""), markup=False, style="bold red")
    for task in failed:
        console.print(f"\ntask {task.task_id} failed" + (f": {task.error}" if task.error else ""), markup=False, style="red")
        if task.log_tail:
            console.print("--- last lines of its log ---", markup=False, style="dim")
            console.print(task.log_tail.rstrip("\n"), markup=False)
        if task.log_uri:
            console.print(f"(full log: {task.log_uri})", markup=False, style="dim")
