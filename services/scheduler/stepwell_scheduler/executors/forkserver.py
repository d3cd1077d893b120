"""The fork server: a small single-threaded process that forks one child per task.

The scheduler starts it early, as a fresh interpreter (never a fork of the multithreaded
gRPC process)::

    python -m stepwell_scheduler.executors.forkserver --fd N --events-fd M [--preload MODULE ...]

It imports the launcher (and the ``--preload`` modules) once, then serves requests read
from the Unix socket ``N`` (its end of a socket pair; the scheduler holds the other end),
answering each on the same socket, and sends notices on socket ``M``. Each child costs one
``fork`` instead of an interpreter start plus imports.

Protocol: one JSON object per line. Replies travel on the request socket so that the
scheduler thread that asked reads its answer itself (no hand-off to another thread);
exit notices travel on the events socket, read by a thread of the scheduler.

* scheduler → server: ``{"id": 7, "module": "stepwell.runtime.launcher", "argv": [TASK_FILE],
  "cwd": DIR, "env": {...}, "stdout": PATH, "stderr": PATH, "hold": [PATH],
  "inline": [MODULE]}`` (an empty ``stdout``/``stderr`` means ``/dev/null``);
* server → scheduler, request socket: ``{"id": 7, "pid": 1234}`` (or ``{"id": 7, "error":
  "..."}``) per request;
* server → scheduler, events socket: ``{"ready": PID}`` once, and ``{"exit": 1234, "code": 0}``
  when a child ends (``code`` as :attr:`subprocess.Popen.returncode`: ``-N`` for signal ``N``).

A child starts a new session (so killing its process group kills everything the task
started), redirects stdin to ``/dev/null`` and stdout/stderr to the given files, enters
``cwd`` with exactly ``env`` as its environment, keeps the ``hold`` files open (a restarted
scheduler recognises an adopted task by them, since a forked child's command line is the
server's), and runs ``MODULE.main(argv)`` as ``python -m MODULE *argv`` would, exiting
with its status.

When the scheduler dies, the socket closes and the server exits; children already forked
keep running (they are in their own sessions), so a restarted scheduler adopts them.

``inline`` modules (``stepwell.runtime.executor``: Stepwell's lightweight components) skip
the second interpreter start too: when the launcher runs the user command
``[sys.executable, "-m", MODULE, ...]`` with plain redirections and the same ``PYTHON*``
environment, the launcher process forks and the child runs MODULE as ``__main__`` (as
``runpy`` does for ``python -m``) with that argv, environment, working directory and
output pipe. The user code still runs in a process of its own; any other command is started
as usual. This is done by replacing ``subprocess.Popen`` in the launcher child only.

Only the standard library is imported here, besides the preloaded modules.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import gc
import importlib
import json
import os
import runpy
import select
import signal
import socket
import subprocess
import sys
import time
import traceback
import warnings
from collections.abc import Sequence
from typing import IO, Any

#: Modules every fork server imports before serving.
DEFAULT_PRELOAD = (
    "stepwell.runtime.launcher",
    "stepwell.runtime.executor",
    # Imported by the launcher when it checks a KFP component's pip prelude (~40 ms each time).
    "packaging.requirements",
    "importlib.metadata",
)
#: Modules preloaded (when importable) with extra environment variables, because their
#: import depends on them. A user command runs inline with such a module only when its
#: environment has the same values; any other inline command gets the package unloaded,
#: so its own import starts fresh (``import kfp`` in a Stepwell component is the full SDK).
CONDITIONAL_PRELOAD: dict[str, dict[str, str]] = {"kfp.dsl.executor_main": {"_KFP_RUNTIME": "true"}}

_LINE_LIMIT = 64 * 1024 * 1024
#: ``sys.path[0]`` of the server (its start-up folder under ``python -m``); children get theirs.
_SERVER_PATH0 = sys.path[0] if sys.path else ""


def _send(sock: socket.socket, message: dict[str, Any]) -> None:
    sock.sendall(json.dumps(message, separators=(",", ":")).encode() + b"\n")


def _exit_code(status: int) -> int:
    return os.waitstatus_to_exitcode(status)


def _redirect(fd: int, path: str, flags: int) -> None:
    target = os.open(path or os.devnull, flags, 0o644)
    if target != fd:
        os.dup2(target, fd)
        os.close(target)


class ForkServer:
    """The serving loop (runs in the fork server process)."""

    def __init__(self, sock: socket.socket, events: socket.socket | None = None) -> None:
        self.sock = sock  # requests in, one reply out per request
        self.events = events or sock  # ready and exit notices
        self._wake_r, self._wake_w = os.pipe()
        self._children: set[int] = set()

    # ----- the loop -------------------------------------------------------------------

    def serve(self) -> None:
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        signal.set_wakeup_fd(self._wake_w)
        signal.signal(signal.SIGCHLD, lambda _s, _f: None)
        # The scheduler's death is noticed through the socket; a terminal's Ctrl-C is its business.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        # Children share the pre-imported heap copy-on-write; keep the collector off it.
        gc.freeze()
        _send(self.events, {"ready": os.getpid()})
        buf = b""
        poller = select.poll()
        poller.register(self.sock.fileno(), select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        while True:
            events = poller.poll(1000)
            self._reap()
            for fd, _mask in events:
                if fd == self._wake_r:
                    with contextlib.suppress(BlockingIOError):
                        while os.read(self._wake_r, 4096):
                            pass
                    continue
                data = self.sock.recv(1 << 16)
                if not data:
                    return  # the scheduler is gone; children keep running
                buf += data
                if len(buf) > _LINE_LIMIT:
                    return
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line.strip():
                        self._handle(json.loads(line))
            self._reap()

    def _reap(self) -> None:
        while self._children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self._children.clear()
                return
            if pid == 0:
                return
            self._children.discard(pid)
            _send(self.events, {"exit": pid, "code": _exit_code(status)})

    def _handle(self, request: dict[str, Any]) -> None:
        request_id = request.get("id")
        sys.stdout.flush()
        sys.stderr.flush()
        # Opened before the fork, so the child holds them from its first instant (close-on-exec:
        # the launcher holds them, the user command does not).
        held: list[int] = []
        for path in request.get("hold") or []:
            with contextlib.suppress(OSError):
                held.append(os.open(str(path), os.O_RDONLY | os.O_CLOEXEC))
        try:
            pid = os.fork()
        except OSError as err:
            pid = -1
            _send(self.sock, {"id": request_id, "error": f"fork failed: {err}"})
        if pid != 0:
            for fd in held:
                os.close(fd)
            if pid < 0:
                return
        if pid == 0:
            code = 3
            try:
                code = self._child(request)
            except SystemExit as exc:
                code = _system_exit_code(exc)
            except BaseException:
                with contextlib.suppress(Exception):
                    traceback.print_exc()
            finally:
                with contextlib.suppress(BaseException):
                    atexit._run_exitfuncs()
                with contextlib.suppress(Exception):
                    sys.stdout.flush()
                with contextlib.suppress(Exception):
                    sys.stderr.flush()
                os._exit(code)
        self._children.add(pid)
        _send(self.sock, {"id": request_id, "pid": pid})

    # ----- in the child ---------------------------------------------------------------

    def _child(self, request: dict[str, Any]) -> int:
        os.setsid()
        _set_process_name("stepwell-task")  # its command line stays the server's
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        self.sock.close()
        self.events.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
        cwd = str(request.get("cwd") or os.getcwd())
        _redirect(0, "", os.O_RDONLY)
        _redirect(1, str(request.get("stdout") or ""), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        _redirect(2, str(request.get("stderr") or ""), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        os.chdir(cwd)
        env = request.get("env")
        if isinstance(env, dict):
            _set_environ(env)
        if sys.path and sys.path[0] == _SERVER_PATH0:
            sys.path[0] = cwd  # as ``python -m`` run in ``cwd`` would have it
        if "random" in sys.modules:
            sys.modules["random"].seed()
        inline = [str(m) for m in request.get("inline") or []]
        if inline:
            _install_inline_popen(frozenset(inline))
        module_name = str(request["module"])
        module = sys.modules.get(module_name) or importlib.import_module(module_name)
        argv = [str(a) for a in request.get("argv") or []]
        sys.argv = [str(getattr(module, "__file__", module_name)), *argv]
        result = module.main(argv)
        return result if isinstance(result, int) else 0


def _set_process_name(name: str) -> None:
    """The name ``ps -o comm``/``top`` show (Linux; at most 15 bytes; best effort)."""
    with contextlib.suppress(OSError), open("/proc/self/comm", "w") as f:
        f.write(name[:15])


def _set_environ(env: dict[str, Any]) -> None:
    """Makes ``os.environ`` exactly ``env``, touching only what differs (each change is a
    ``putenv``/``unsetenv``)."""
    wanted = {str(k): str(v) for k, v in env.items()}
    for key in [k for k in os.environ if k not in wanted]:
        del os.environ[key]
    for key, value in wanted.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


def _system_exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    with contextlib.suppress(Exception):
        print(exc.code, file=sys.stderr)
    return 1


# ----- Python user commands without a second interpreter start ---------------------------

#: Interpreter settings read from the environment at start-up: a user command whose
#: environment differs in any of them gets a real interpreter.
_SERVER_PYTHON_ENV = {k: v for k, v in os.environ.items() if k.startswith("PYTHON")}
_INLINE_KWARGS = frozenset({"stdin", "stdout", "stderr", "env", "cwd", "close_fds", "bufsize"})


def _inline_module(allowed: frozenset[str], args: Any, kwargs: dict[str, Any]) -> str | None:
    """The module to run in a forked interpreter, when ``Popen(args, **kwargs)`` is exactly
    ``[sys.executable, "-m", MODULE, ...]`` for an allowed module with plain redirections."""
    if not isinstance(args, list | tuple) or len(args) < 3:
        return None
    if args[0] != sys.executable or args[1] != "-m" or args[2] not in allowed:
        return None
    if not set(kwargs) <= _INLINE_KWARGS or not kwargs.get("close_fds", True):
        return None
    if kwargs.get("stdin") not in (None, subprocess.DEVNULL):
        return None
    if "threading" in sys.modules and sys.modules["threading"].active_count() > 1:
        return None  # forking a threaded process is unsafe; start an interpreter
    if kwargs.get("stdout") not in (None, subprocess.PIPE, subprocess.DEVNULL):
        return None
    if kwargs.get("stderr") not in (None, subprocess.STDOUT, subprocess.DEVNULL):
        return None
    env = kwargs.get("env")
    env = os.environ if env is None else env
    if {k: v for k, v in env.items() if k.startswith("PYTHON")} != _SERVER_PYTHON_ENV:
        return None
    if args[2] in _CONDITIONALLY_LOADED and args[2].split(".")[0] in _conditional_mismatch(env):
        return None  # preloaded for another environment: a fresh interpreter imports it right
    return str(args[2])


def _install_inline_popen(allowed: frozenset[str]) -> None:
    """In a task's launcher process: ``subprocess.Popen`` of ``python -m MODULE ...`` for an
    allowed module forks this process and runs the module as ``__main__`` in the child
    instead of starting a new interpreter (the modules are already imported here).

    The user code still runs in its own process, with the same argv, environment, working
    directory and redirections; only the interpreter start and the imports are saved. Any
    other command goes to the real ``Popen``.
    """
    real: type[subprocess.Popen[Any]] = subprocess.Popen

    class InlinePopen(real):  # type: ignore[valid-type,misc]
        def __init__(self, args: Any, *rest: Any, **kwargs: Any) -> None:
            module = None if rest else _inline_module(allowed, args, kwargs)
            self._inline = module is not None
            if module is None:
                super().__init__(args, *rest, **kwargs)
                return
            self.args = args
            self.stdin = self.stderr = None
            self.stdout: IO[bytes] | None = None
            self.returncode: int | None = None
            self.encoding = self.errors = None
            self.text_mode = False
            self.universal_newlines = False
            self._sigint_wait_secs = 0.25
            self._closed_child_pipe_fds = True
            self._communication_started = False
            self._child_created = False
            self.pid = self._fork(module, list(args[3:]), kwargs)

        def _fork(self, module: str, argv: list[str], kwargs: dict[str, Any]) -> int:
            out = kwargs.get("stdout")
            read_end = write_end = -1
            if out == subprocess.PIPE:
                read_end, write_end = os.pipe()
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    code = _run_inline(module, argv, kwargs, write_end)
                finally:
                    os._exit(code)
            if write_end >= 0:
                os.close(write_end)
                self.stdout = os.fdopen(read_end, "rb")
            return pid

        def poll(self) -> int | None:
            if not self._inline:
                return super().poll()
            if self.returncode is None:
                with contextlib.suppress(ChildProcessError):
                    pid, status = os.waitpid(self.pid, os.WNOHANG)
                    if pid:
                        self.returncode = _exit_code(status)
            return self.returncode

        def wait(self, timeout: float | None = None) -> int:
            if not self._inline:
                return super().wait(timeout)
            if timeout is None:
                if self.returncode is None:
                    _, status = os.waitpid(self.pid, 0)
                    self.returncode = _exit_code(status)
                return self.returncode
            deadline = time.monotonic() + timeout
            while self.poll() is None:
                if time.monotonic() >= deadline:
                    raise subprocess.TimeoutExpired(self.args, timeout)
                time.sleep(0.005)
            assert self.returncode is not None
            return self.returncode

        def communicate(self, input: Any = None, timeout: float | None = None) -> tuple[Any, Any]:
            if not self._inline:
                return super().communicate(input, timeout)
            data = self.stdout.read() if self.stdout is not None else None
            if self.stdout is not None:
                self.stdout.close()
            self.wait(timeout)
            return data, None

        def send_signal(self, sig: int) -> None:
            if not self._inline:
                super().send_signal(sig)
            elif self.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, sig)

        def terminate(self) -> None:
            self.send_signal(signal.SIGTERM)

        def kill(self) -> None:
            self.send_signal(signal.SIGKILL)

        def __del__(self) -> None:
            if not getattr(self, "_inline", True):
                super().__del__()

    subprocess.Popen = InlinePopen  # type: ignore[misc]


def _run_inline(module: str, argv: list[str], kwargs: dict[str, Any], write_end: int) -> int:
    """In the forked user-command process: redirect, then run ``module`` as ``__main__``."""
    try:
        out, err = kwargs.get("stdout"), kwargs.get("stderr")
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        if out == subprocess.PIPE:
            os.dup2(write_end, 1)
        elif out == subprocess.DEVNULL:
            os.dup2(devnull, 1)
        if err == subprocess.STDOUT:
            os.dup2(1, 2)
        elif err == subprocess.DEVNULL:
            os.dup2(devnull, 2)
        os.closerange(3, 1 << 16)  # close_fds, as Popen does
        for sig in (signal.SIGTERM, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        cwd = kwargs.get("cwd")
        if cwd:
            os.chdir(cwd)
        env = kwargs.get("env")
        if env is not None:
            _set_environ(env)
        _unload(_conditional_mismatch(os.environ))
        if sys.path:
            sys.path[0] = os.getcwd()
        if "random" in sys.modules:
            sys.modules["random"].seed()
        sys.argv = [sys.executable, *argv]  # runpy sets argv[0] to the module's file
        code: int = 0
        try:
            _run_module_as_main(module)
        except SystemExit as exc:
            code = _system_exit_code(exc)
        except BaseException:
            traceback.print_exc()
            code = 1
        with contextlib.suppress(BaseException):
            atexit._run_exitfuncs()
        return code
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        with contextlib.suppress(Exception):
            sys.stderr.flush()


#: ``runpy``'s module details (name, spec, code) of the preloaded modules, read once by the
#: server so that a forked ``python -m MODULE`` does not find, read and unmarshal them again.
_MAIN_DETAILS: dict[str, tuple[str, Any, Any]] = {}


def _cache_main_details(names: Sequence[str]) -> None:
    get_details = getattr(runpy, "_get_module_details", None)
    if get_details is None:
        return
    for name in names:
        if name in sys.modules:
            # runpy warns that a preloaded module is already imported: true, and why we are here.
            with warnings.catch_warnings(), contextlib.suppress(Exception, SystemExit):
                warnings.simplefilter("ignore", RuntimeWarning)
                _MAIN_DETAILS[name] = get_details(name)  # fails for what is not runnable (a package)


def _run_module_as_main(module: str) -> None:
    """``runpy.run_module(module, run_name="__main__", alter_sys=True)``, from the server's
    cached code when the module is still the preloaded one."""
    details = _MAIN_DETAILS.get(module)
    run_code = getattr(runpy, "_run_module_code", None)
    if details is None or run_code is None or module not in sys.modules:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        return
    _name, spec, code = details
    run_code(code, None, "__main__", spec)  # what run_module does with these details


def _warm_regex_cache() -> None:
    """Compiles the patterns ``argparse`` matches options with, into ``re``'s cache, so that
    each forked command line parser (Stepwell's and KFP's executors use one) finds them."""
    with contextlib.suppress(Exception):
        parser = argparse.ArgumentParser(prog="warm-up", description="warm-up")
        parser.add_argument("--first", type=str, required=True, help="warm-up")
        parser.add_argument("--second", type=str, help="warm-up")
        parser.add_argument("--flag", action="store_true", help="warm-up")
        parser.parse_known_args(["--first", "a", "--second=b", "--flag", "--other", "c", "d"])


_CONDITIONALLY_LOADED: dict[str, dict[str, str]] = {}


def _preload_with_env(name: str, overlay: dict[str, str]) -> None:
    saved = {k: os.environ.get(k) for k in overlay}
    os.environ.update(overlay)
    try:
        importlib.import_module(name)
        _CONDITIONALLY_LOADED[name] = overlay
    except Exception:
        pass  # optional (kfp is not a dependency of Stepwell's runtime)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _conditional_mismatch(env: Any) -> list[str]:
    """Top-level packages preloaded under an environment that ``env`` does not have."""
    return [
        name.split(".")[0]
        for name, overlay in _CONDITIONALLY_LOADED.items()
        if any(env.get(k) != v for k, v in overlay.items())
    ]


def _unload(packages: list[str]) -> None:
    if not packages:
        return
    for name in list(sys.modules):
        if name.split(".")[0] in packages:
            del sys.modules[name]


def _warm_metadata_cache() -> None:
    """Lists every ``sys.path`` folder once, so children's ``importlib.metadata`` lookups
    (the launcher's requirement checks) start from a warm cache."""
    with contextlib.suppress(Exception):
        import importlib.metadata

        for _ in importlib.metadata.distributions(name="stepwell-fork-server-warm-up"):
            pass
    with contextlib.suppress(Exception):
        from stepwell.runtime._launch_python import installed_versions, shared_python_shim

        installed_versions()
        # The shared python3 shim, checked once here rather than read by every task.
        shared_python_shim()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stepwell_scheduler.executors.forkserver")
    parser.add_argument("--fd", type=int, required=True, help="this server's end of the request socket pair")
    parser.add_argument("--events-fd", type=int, default=-1, help="this server's end of the events socket pair")
    parser.add_argument("--preload", action="append", default=[], help="a module to import before serving")
    args = parser.parse_args(argv)
    _set_process_name("stepwell-fork")
    sock = socket.socket(fileno=args.fd)
    sock.setblocking(True)
    events = socket.socket(fileno=args.events_fd) if args.events_fd >= 0 else None
    for name in (*DEFAULT_PRELOAD, *args.preload):
        try:
            importlib.import_module(name)
        except ImportError as err:
            print(f"stepwell fork server: cannot preload {name}: {err}", file=sys.stderr, flush=True)
    for name, overlay in CONDITIONAL_PRELOAD.items():
        _preload_with_env(name, overlay)
    _warm_metadata_cache()
    _warm_regex_cache()
    _cache_main_details([*DEFAULT_PRELOAD, *args.preload, *CONDITIONAL_PRELOAD])
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        ForkServer(sock, events).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
