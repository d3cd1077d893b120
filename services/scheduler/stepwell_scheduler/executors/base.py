"""The executor interface: how the engine starts, watches and stops task launchers."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


@dataclass
class LaunchRequest:
    """One task attempt to start: the launcher reads ``task_file`` and writes ``result_file``."""

    key: str  # "<run_id>:<qualified task name>"
    task_file: str
    result_file: str
    #: Where the launcher process's own stdout/stderr go (its crash messages).
    launcher_log: str
    #: The attempt's folder: the executor creates it (and ``launcher_log``'s folder) when
    #: missing, off the engine's path.
    cwd: str
    env: dict[str, str] = field(default_factory=dict)
    image: str = ""
    #: The task file's content, when the executor is to write it (its folder exists):
    #: where it can, off the engine's process. "": the file is written already.
    task_text: str = ""


@dataclass
class TaskHandle:
    """A started task attempt."""

    key: str
    pid: int
    result_file: str
    launcher_log: str
    exit_code: int | None = None


#: Called with a handle's key when its process has ended.
ExitCallback = Callable[[str], None]


class Executor(ABC):
    """Starts launchers somewhere (a local process, a pod) and reports when they end."""

    def __init__(self) -> None:
        self.on_exit: ExitCallback = lambda key: None

    @abstractmethod
    def submit(self, request: LaunchRequest) -> TaskHandle:
        """Starts the launcher for ``request``; raises ``OSError`` when it cannot."""

    def submit_many(self, requests: Sequence[LaunchRequest]) -> list[TaskHandle | Exception]:
        """Starts the launchers of several requests together (a fan-out); per request, in
        order, its handle or the error :meth:`submit` would have raised. Executors that
        can start several at once for less than one at a time override it."""
        out: list[TaskHandle | Exception] = []
        for request in requests:
            try:
                out.append(self.submit(request))
            except Exception as err:
                out.append(err)
        return out

    @abstractmethod
    def poll(self, handle: TaskHandle) -> int | None:
        """The exit code when the attempt has ended, else None."""

    @abstractmethod
    def cancel(self, handle: TaskHandle) -> None:
        """Stops the attempt (and everything it started)."""

    @abstractmethod
    def adopt(self, key: str, pid: int, result_file: str, launcher_log: str, marker: str) -> TaskHandle | None:
        """Re-attaches to an attempt started before a scheduler restart, or None if it is gone.

        ``marker`` is a string the process's command line must contain (the task file path),
        so a recycled pid is not mistaken for the task.
        """

    def start_error(self, task_file: str) -> str:
        """Why the attempt of ``task_file`` could not start after its process was created
        (its folder could not be made, say), or "" when it is not known."""
        return ""

    def logs(self, handle: TaskHandle, max_bytes: int = 64 * 1024) -> str:
        """The end of the launcher's own output (its errors, when it crashed): with the
        local executor, the task log, which holds the command's output too."""
        try:
            with open(handle.launcher_log, "rb") as f:
                f.seek(0, 2)
                size = f.tell()
                f.seek(max(0, size - max_bytes))
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def shutdown(self) -> None:
        """Releases resources; running attempts keep running (a restarted scheduler adopts them)."""
        return None
