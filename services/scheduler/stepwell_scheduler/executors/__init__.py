"""Executors: where task launchers run (``local``: one OS process per task)."""

from stepwell_scheduler.executors.base import Executor, LaunchRequest, TaskHandle
from stepwell_scheduler.executors.local import LocalExecutor

__all__ = ["Executor", "LaunchRequest", "LocalExecutor", "TaskHandle"]
