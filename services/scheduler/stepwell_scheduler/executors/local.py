"""The local executor: one OS process per task, running ``stepwell.runtime.launcher TASK_FILE``.

Two ways to start that process (``STEPWELL_LOCAL_START_METHOD``):

* ``fork`` (default): a fork server (:mod:`~stepwell_scheduler.executors.forkserver`),
  started as a fresh interpreter when the executor is created, has the launcher
  pre-imported and forks one child per task, so a task costs a ``fork`` rather than an
  interpreter start and the launcher's imports. The scheduler process itself (threads,
  gRPC, database pools) is never forked.
* ``spawn``: ``[python, "-m", "stepwell.runtime.launcher", TASK_FILE]`` per task.

With ``fork``, a lightweight component's user command (``python3 -m
stepwell.runtime.executor ...`` or ``python3 -m kfp.dsl.executor_main ...``) runs in the
task's process itself, from the preloaded interpreter, with the same argv, environment,
working folder and output as a second interpreter would have
(:mod:`~stepwell_scheduler.executors.inprocess`); ``inline_modules=()``
(``STEPWELL_LOCAL_INLINE_PYTHON=false``) starts a second interpreter instead.

Either way the task is its own session (``pid == pgid``, so cancel kills its whole tree),
its stdin is ``/dev/null``, its stdout is discarded (the launcher tees the user command's
output into the task log itself) and its stderr goes to ``LaunchRequest.launcher_log``
(the engine makes that the task log).
Tasks keep running when the scheduler dies; a restarted scheduler adopts them by pid.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Literal

from stepwell_scheduler.executors.base import Executor, LaunchRequest, TaskHandle
from stepwell_scheduler.executors.forkclient import ForkServerClient, ForkServerError, Spawn

log = logging.getLogger(__name__)

LAUNCHER_MODULE = "stepwell.runtime.launcher"
StartMethod = Literal["fork", "spawn"]
START_METHODS: tuple[StartMethod, ...] = ("fork", "spawn")
#: ``python -m`` user commands that forked launchers run without a new interpreter.
INLINE_MODULES = ("stepwell.runtime.executor", "kfp.dsl.executor_main")


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, exited but not yet reaped, counts as ended)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return True
    state = stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3]
    return state not in (b"Z", b"X")


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def _holds_open(pid: int, path: str) -> bool:
    """Whether ``pid`` has ``path`` open (how a forked task, whose command line is the
    fork server's, is recognised)."""
    real = os.path.realpath(path)
    fd_dir = f"/proc/{pid}/fd"
    try:
        names = os.listdir(fd_dir)
    except OSError:
        return False
    for name in names:
        with contextlib.suppress(OSError):
            if os.readlink(os.path.join(fd_dir, name)) == real:
                return True
    return False


def _is_task(pid: int, marker: str) -> bool:
    return marker in _cmdline(pid) or _holds_open(pid, marker)


class LocalExecutor(Executor):
    """Runs each task's launcher as a local process in its own session (process group).

    ``start_method`` is ``"fork"`` (through a fork server started right here) or
    ``"spawn"``; ``preload`` names extra modules the fork server imports once (e.g.
    ``minio`` when artifacts live in S3) so that tasks do not each pay for them.
    ``inline_modules``: with ``fork``, user commands ``python3 -m MODULE ...`` for these
    modules run in the task's process instead of a new interpreter (empty: never); the
    fork server warms up on no-op tasks of each while it is idle.
    """

    def __init__(
        self,
        python: str = sys.executable,
        start_method: StartMethod = "fork",
        preload: Iterable[str] = (),
        inline_modules: Iterable[str] = INLINE_MODULES,
    ) -> None:
        super().__init__()
        if start_method not in START_METHODS:
            raise ValueError(f"unknown start method {start_method!r}; expected one of {START_METHODS}")
        self.python = python
        self.start_method: StartMethod = start_method
        self.inline_modules = list(inline_modules)
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()
        # Forked tasks: request tag -> handle while running; exits that beat their handle.
        self._forked: dict[int, TaskHandle] = {}
        self._forked_keys: dict[str, int] = {}
        self._early_exits: dict[int, int] = {}
        #: Requests whose server died before their handle existed (see _forked_lost).
        self._lost_tags: set[int] = set()
        self._fork: ForkServerClient | None = None
        if start_method == "fork":
            self._fork = ForkServerClient(
                python, preload, self.inline_modules, on_exit=self._forked_exit, on_lost=self._forked_lost
            )
            try:
                self._fork.start()
            except ForkServerError as err:
                log.warning("%s; task processes will be spawned instead", err)

    def wait_warmed(self, timeout: float) -> bool:
        """Waits until the fork server has finished its warm-up (False on timeout, or
        without a fork server or modules to warm up on)."""
        if self._fork is None or not self.inline_modules:
            return False
        return self._fork.warmed.wait(timeout)

    @property
    def fork_server_pid(self) -> int | None:
        """The fork server's pid (None in ``spawn`` mode or when it is not running)."""
        return self._fork.pid if self._fork is not None else None

    # ----- submit -----------------------------------------------------------------------

    def submit(self, request: LaunchRequest) -> TaskHandle:
        if self._fork is None:
            return self._submit_spawned(request)
        (result,) = self.submit_many([request])
        if isinstance(result, BaseException):
            raise result
        return result

    def submit_many(self, requests: Sequence[LaunchRequest]) -> list[TaskHandle | Exception]:
        """With ``fork``, all the requests go to the fork server at once (one round trip)."""
        if self._fork is None:
            return super().submit_many(requests)
        try:
            results = self._fork.spawn_many([self._spawn_of(request) for request in requests])
        except ForkServerError as err:
            results = [err for _ in requests]
        out: list[TaskHandle | Exception] = []
        for request, result in zip(requests, results, strict=True):
            if not isinstance(result, ForkServerError):
                out.append(self._forked_handle(request, *result))
            elif result.sent:
                out.append(result)
            else:
                log.warning("%s; spawning task %s instead", result, request.key)
                try:
                    out.append(self._submit_spawned(request))
                except OSError as err:
                    out.append(err)
        return out

    def _spawn_of(self, request: LaunchRequest) -> Spawn:
        return Spawn(
            LAUNCHER_MODULE,
            [request.task_file],
            cwd=request.cwd,
            env=request.env,
            stdout="",
            stderr=request.launcher_log,
            hold=[request.task_file],
            inline=self.inline_modules,
            error_file=start_error_file(request.task_file),
            files={request.task_file: request.task_text} if request.task_text else {},
        )

    def _forked_handle(self, request: LaunchRequest, tag: int, pid: int) -> TaskHandle:
        handle = TaskHandle(request.key, pid, request.result_file, request.launcher_log)
        with self._lock:
            code = self._early_exits.pop(tag, None)
            lost = tag in self._lost_tags
            self._lost_tags.discard(tag)
            if code is None and not lost:
                self._forked[tag] = handle
                self._forked_keys[request.key] = tag
        if code is not None:
            handle.exit_code = code
            self.on_exit(handle.key)
        elif lost:  # its server died before this handle existed: watch it by pid
            self._watch_orphans([handle])
        return handle

    def _forked_exit(self, tag: int, code: int) -> None:
        with self._lock:
            handle = self._forked.pop(tag, None)
            if handle is None:
                self._early_exits[tag] = code
                return
            if self._forked_keys.get(handle.key) == tag:
                del self._forked_keys[handle.key]
        handle.exit_code = code
        self.on_exit(handle.key)

    def _forked_lost(self, tags: list[int]) -> None:
        """The fork server died: watch its still-running children by pid instead (a child
        whose handle does not exist yet is watched once it does)."""
        with self._lock:
            handles = [h for h in (self._forked.pop(t, None) for t in tags) if h is not None]
            known = {self._forked_keys.pop(handle.key, None) for handle in handles}
            for tag in tags:
                self._early_exits.pop(tag, None)
                if tag not in known:
                    self._lost_tags.add(tag)
        self._watch_orphans(handles)

    def _watch_orphans(self, handles: list[TaskHandle]) -> None:
        for handle in handles:
            threading.Thread(
                target=self._watch_adopted, args=(handle,), name=f"orphan-{handle.pid}", daemon=True
            ).start()

    def _submit_spawned(self, request: LaunchRequest) -> TaskHandle:
        if request.task_text:
            with open(request.task_file, "w", encoding="utf-8") as f:
                f.write(request.task_text)
        os.makedirs(request.cwd, exist_ok=True)
        os.makedirs(os.path.dirname(request.launcher_log) or ".", exist_ok=True)
        # The launcher inherits an open descriptor of its task file: from its first instant
        # (before its command line shows the task file) it is recognisable for adoption.
        marker = os.open(request.task_file, os.O_RDONLY) if os.path.exists(request.task_file) else -1
        try:
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
                    pass_fds=(marker,) if marker >= 0 else (),
                )
        finally:
            if marker >= 0:
                os.close(marker)
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

    # ----- watch and stop ---------------------------------------------------------------

    def poll(self, handle: TaskHandle) -> int | None:
        if handle.exit_code is not None:
            return handle.exit_code
        with self._lock:
            proc = self._procs.get(handle.key)
            forked = self._forked_keys.get(handle.key) is not None
        if proc is not None:
            return proc.poll()
        if forked:
            return None  # the fork server reports its exit status
        return None if _alive(handle.pid) else -1

    def cancel(self, handle: TaskHandle) -> None:
        if handle.exit_code is not None:
            return
        if not _signal_group(handle.pid, signal.SIGTERM):
            return
        threading.Thread(target=self._kill_later, args=(handle,), daemon=True).start()

    def _kill_later(self, handle: TaskHandle, grace: float = 5.0) -> None:
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if handle.exit_code is not None or not _alive(handle.pid):
                return
            time.sleep(0.1)
        _signal_group(handle.pid, signal.SIGKILL)

    def start_error(self, task_file: str) -> str:
        return read_start_error(task_file)

    def adopt(self, key: str, pid: int, result_file: str, launcher_log: str, marker: str) -> TaskHandle | None:
        if pid <= 0 or not _alive(pid) or not _is_task(pid, marker):
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

    def shutdown(self) -> None:
        """Stops the fork server; running tasks keep running (a restarted scheduler adopts them)."""
        if self._fork is not None:
            self._fork.close()


def start_error_file(task_file: str) -> str:
    """Where a forked task writes why it could not start (beside its task file: its own
    folder may be what could not be made)."""
    return task_file + ".error"


def read_start_error(task_file: str) -> str:
    """Why the task of ``task_file`` could not start, or "" when it did (or no reason was
    written). The record is removed as it is read: the attempt number of a start that
    failed this way is used again (it left no result), and its next start may succeed."""
    path = start_error_file(task_file)
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            why = f.read().strip()
    except OSError:
        return ""
    with contextlib.suppress(OSError):
        os.unlink(path)
    return why


def _signal_group(pid: int, sig: int) -> bool:
    """Signals the task's process group, or the task process alone while it has no group
    of its own yet (a forked child is reported before its ``setsid``); False when the
    process is gone."""
    try:
        os.killpg(pid, sig)
        return True
    except PermissionError:
        return False
    except ProcessLookupError:
        pass
    try:
        os.kill(pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False
