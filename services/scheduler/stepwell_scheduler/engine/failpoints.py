"""Named crash points for durability tests: the scheduler kills itself (SIGKILL) there.

``STEPWELL_SCHEDULER_FAILPOINTS=name[@n][:stop],...`` makes the *n*-th pass (default the
first) through the named point end the process at once (a batch of tasks passing a point
together counts once per task), as ``kill -9`` would, so a test can
stop the scheduler between two steps that must survive a crash together. With ``:stop``
the process stops itself (SIGSTOP) instead, as a stalled scheduler would, until the test
sends SIGCONT. Unset (the default), a failpoint is one set lookup.

Points, in the order a task passes them: ``claimed`` (tasks claimed, and those that need
a process given their attempt, nothing started), ``attempt-stored`` (task files written,
no process), ``submitted`` (processes started, pids not stored, executions not
recorded), ``execution-created`` (pids stored, the attempts' executions recorded, their
ids not stored), ``outputs-recorded`` (result recorded in the metadata service, task row not
ended), ``task-finished`` (task rows ended; the engine ends them in the transaction that
also advances their runs and claims the next tasks), ``cache-recorded`` (a cache hit's
execution recorded, task row not ended), ``advanced`` (a run's DAG advanced).
"""

from __future__ import annotations

import logging
import os
import signal
import threading

log = logging.getLogger(__name__)


class Failpoints:
    """The configured crash points and how often each was passed."""

    def __init__(self, spec: str = "") -> None:
        self._at: dict[str, int] = {}
        self._stop: set[str] = set()
        for item in filter(None, (part.strip() for part in spec.split(","))):
            item, _, action = item.partition(":")
            name, _, count = item.partition("@")
            self._at[name] = int(count or 1)
            if action == "stop":
                self._stop.add(name)
            elif action:
                raise ValueError(f"failpoint {item}: unknown action {action!r} (only 'stop')")
        self._passes: dict[str, int] = {}
        self._lock = threading.Lock()

    def __call__(self, name: str, tasks: int = 1) -> None:
        if name not in self._at:
            return
        with self._lock:
            before = self._passes.get(name, 0)
            self._passes[name] = before + tasks
            hit = before < self._at[name] <= before + tasks
        if hit and name in self._stop:
            log.warning("failpoint %s reached: stopping the scheduler", name)
            os.kill(os.getpid(), signal.SIGSTOP)
        elif hit:
            log.warning("failpoint %s reached: killing the scheduler", name)
            os.kill(os.getpid(), signal.SIGKILL)
