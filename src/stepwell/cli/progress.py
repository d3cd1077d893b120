"""Live progress of a run on stderr: a table that redraws on a terminal, one line per change otherwise."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import IO

from rich.console import Console
from rich.live import Live
from rich.table import Table

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
_MARK = {"SUCCEEDED": "✓", "FAILED": "✗", "RUNNING": "▶", "SKIPPED": "-", "CANCELED": "■"}


def _seconds(start: datetime | None, end: datetime | None) -> str:
    if start is None:
        return ""
    if end is None:
        end = datetime.now(start.tzinfo)
    return f"{(end - start).total_seconds():.2f}s"


def _table(run: Run) -> Table:
    table = Table(title=f"run {run.run_id} · {run.pipeline_name} · {run.state}", title_justify="left", box=None)
    table.add_column("task")
    table.add_column("state")
    table.add_column("time", justify="right")
    for task in run.tasks:
        style = _STYLE.get(task.state, "")
        table.add_row(task.task_id, f"[{style}]{task.state}[/]", _seconds(task.start_time, task.end_time))
    return table


def _line(task: TaskDetail) -> str:
    mark = _MARK.get(task.state, "·")
    took = _seconds(task.start_time, task.end_time) if task.state not in ("PENDING", "RUNNING") else ""
    return f"{mark} {task.task_id} {task.state.lower()}" + (f" ({took})" if took else "")


def follow(runs: Iterable[Run], stream: IO[str]) -> Run:
    """Shows each update of ``runs`` on ``stream`` and returns the last one."""
    console = Console(file=stream, highlight=False)
    last: Run | None = None
    if console.is_terminal:
        with Live(console=console, refresh_per_second=10, transient=False) as live:
            for run in runs:
                live.update(_table(run))
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
