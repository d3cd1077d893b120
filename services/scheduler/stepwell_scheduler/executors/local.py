"""The local executor: one OS process per task, ``python -m stepwell.runtime.launcher TASK_FILE``."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time

from stepwell_scheduler.executors.base import Executor, LaunchRequest, TaskHandle

log = logging.getLogger(__name__)

LAUNCHER_MODULE = "stepwell.runtime.launcher"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


class LocalExecutor(Executor):
    """Runs each task's launcher as a child process in its own session (process group)."""

    def __init__(self, python: str = sys.executable) -> None:
        super().__init__()
        self.python = python
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()

    def submit(self, request: LaunchRequest) -> TaskHandle:
        os.makedirs(os.path.dirname(request.launcher_log) or ".", exist_ok=True)
        with open(request.launcher_log, "ab") as out:
            proc = subprocess.Popen(
                [self.python, "-m", LAUNCHER_MODULE, request.task_file],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=out,
                cwd=request.cwd,
                env=request.env,
                start_new_session=True,
                close_fds=True,
            )
        handle = TaskHandle(request.key, proc.pid, request.result_file, request.launcher_log)
        with self._lock:
            self._procs[request.key] = proc
        threading.Thread(target=self._wait, args=(handle, proc), name=f"wait-{proc.pid}", daemon=True).start()
        return handle

    def _wait(self, handle: TaskHandle, proc: subprocess.Popen[bytes]) -> None:
        handle.exit_code = proc.wait()
        with self._lock:
            self._procs.pop(handle.key, None)
        self.on_exit(handle.key)

    def poll(self, handle: TaskHandle) -> int | None:
        if handle.exit_code is not None:
            return handle.exit_code
        with self._lock:
            proc = self._procs.get(handle.key)
        if proc is not None:
            return proc.poll()
        return None if _alive(handle.pid) else -1

    def cancel(self, handle: TaskHandle) -> None:
        if handle.exit_code is not None:
            return
        try:
            os.killpg(handle.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            return
        threading.Thread(target=self._kill_later, args=(handle,), daemon=True).start()

    def _kill_later(self, handle: TaskHandle, grace: float = 5.0) -> None:
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if handle.exit_code is not None or not _alive(handle.pid):
                return
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(handle.pid, signal.SIGKILL)

    def adopt(self, key: str, pid: int, result_file: str, launcher_log: str, marker: str) -> TaskHandle | None:
        if pid <= 0 or not _alive(pid) or marker not in _cmdline(pid):
            return None
        handle = TaskHandle(key, pid, result_file, launcher_log)
        threading.Thread(target=self._watch_adopted, args=(handle,), name=f"adopt-{pid}", daemon=True).start()
        return handle

    def _watch_adopted(self, handle: TaskHandle) -> None:
        while _alive(handle.pid) and not os.path.exists(handle.result_file):
            time.sleep(0.2)
        while _alive(handle.pid):
            time.sleep(0.05)
        handle.exit_code = 0 if os.path.exists(handle.result_file) else -1
        self.on_exit(handle.key)
