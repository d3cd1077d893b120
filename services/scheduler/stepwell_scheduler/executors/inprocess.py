"""Python user commands run in the task's own process, from the fork server's warm interpreter.

A task forked by the fork server (:mod:`.forkserver`) is a launcher process with the
runtime already imported. When the launcher's user command is ``[sys.executable, "-m",
MODULE, ...]`` for a module the request allows (Stepwell's and KFP's executors), the same
interpreter that has MODULE imported runs it as ``__main__``, as ``python -m MODULE``
would: with that argv, environment (exactly), working folder and ``sys.path[0]``, stdin
``/dev/null`` and stdout and stderr written to the task log. No second interpreter starts
and no second process is forked: a ``fork`` of the launcher cost as much as the rest of a
no-op task, most of it the kernel copying pages both processes touch.

The task is still one OS process of its own (its own session, as before); what it no
longer has is a wall between the launcher's bookkeeping and the user code. So after the
command the runner puts back what the command may have changed that the launcher relies
on: the working folder, the environment, ``sys.argv``, ``sys.path``, the standard
streams (objects and file descriptors 0 to 2) and the signal handlers. SIGTERM (cancel,
timeout) raises in the command, which ends it with status ``-15`` as a signal would have
ended a child, and the launcher still stores the log and writes its result. A command
that kills the process itself (``os._exit``, a crash in C code, SIGKILL) leaves no result;
the scheduler then reports the launcher's exit and the last lines of the task log.

A command runs a fresh interpreter instead (the launcher starts a child) when its
``PYTHON*`` variables differ from the fork server's, which read them at start-up, or when
a package was preloaded under an environment the command does not have (see
:data:`CONDITIONAL_PRELOAD`).

Only the standard library is imported here.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import runpy
import signal
import sys
import tempfile
import threading
import traceback
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stepwell.runtime.launcher import InProcessRunner

#: Modules preloaded (when importable) with extra environment variables, because their
#: import depends on them. A user command runs in-process with such a module only when its
#: environment has the same values; any other in-process command gets the package
#: unloaded, so its own import starts fresh (``import kfp`` in a Stepwell component is
#: the full SDK).
CONDITIONAL_PRELOAD: dict[str, dict[str, str]] = {"kfp.dsl.executor_main": {"_KFP_RUNTIME": "true"}}

#: Interpreter settings read from the environment at start-up: a user command whose
#: environment differs in any of them gets a real interpreter.
_SERVER_PYTHON_ENV = {k: v for k, v in os.environ.items() if k.startswith("PYTHON")}
_CONDITIONALLY_LOADED: dict[str, dict[str, str]] = {}
#: ``runpy``'s module details (name, spec, code) of the preloaded modules, read once by the
#: server so that a ``python -m MODULE`` run in a task does not find, read and unmarshal
#: them again.
_MAIN_DETAILS: dict[str, tuple[str, Any, Any]] = {}

def set_environ(env: dict[str, Any]) -> None:
    """Makes ``os.environ`` exactly ``env``, touching only what differs (each change is a
    ``putenv``/``unsetenv``)."""
    wanted = {str(k): str(v) for k, v in env.items()}
    for key in [k for k in os.environ if k not in wanted]:
        del os.environ[key]
    for key, value in wanted.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


def system_exit_code(exc: SystemExit) -> int:
    """The exit status ``python`` gives for an uncaught ``SystemExit``."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    with contextlib.suppress(Exception):
        print(exc.code, file=sys.stderr)
    return 1


def runnable_module(allowed: frozenset[str], argv: Sequence[str], env: dict[str, str]) -> str | None:
    """The module to run in this process, when ``argv`` is exactly ``[sys.executable, "-m",
    MODULE, ...]`` for an allowed module and ``env`` lets this interpreter stand for a new one."""
    if len(argv) < 3 or argv[0] != sys.executable or argv[1] != "-m" or argv[2] not in allowed:
        return None
    if {k: v for k, v in env.items() if k.startswith("PYTHON")} != _SERVER_PYTHON_ENV:
        return None
    if argv[2] in _CONDITIONALLY_LOADED and argv[2].split(".")[0] in conditional_mismatch(env):
        return None  # preloaded for another environment: a fresh interpreter imports it right
    return str(argv[2])


class _Terminated(BaseException):
    """SIGTERM reached a user command running in the task's own process."""


def _raise_terminated(_signum: int, _frame: Any) -> None:
    raise _Terminated


def _ignore_terminate(_signum: int, _frame: Any) -> None:
    """SIGTERM after the command: the launcher finishes its report (a launcher with a
    child forwarded it to the ended child, to the same effect); a kill follows if it
    takes too long."""


_TERM = {signal.SIGTERM}
#: Handlers a command may change that matter to the launcher afterwards.
_SAVED_SIGNALS = (
    signal.SIGTERM, signal.SIGINT, signal.SIGCHLD, signal.SIGPIPE, signal.SIGALRM,
    signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2,
)  # fmt: skip


def runner(allowed: frozenset[str], in_task: bool = True) -> InProcessRunner:
    """The launcher's in-process runner for the modules in ``allowed`` (see the module doc).

    ``in_task``: this is a task's process, so the exit handlers run after the command, as
    at its interpreter's end, and a SIGTERM after the command is ignored while the
    launcher reports. The fork server's warm-up passes False: the server keeps the exit
    handlers its modules registered (every task inherits them) and its own SIGTERM."""

    def run(argv: list[str], env: dict[str, str], cwd: str, log_fd: int) -> int | None:
        module = runnable_module(allowed, argv, env)
        if module is None:
            return None
        # SIGTERM is held outside the command itself, so that it never escapes into the
        # launcher: it ends the command, or, after it, is ignored.
        signal.pthread_sigmask(signal.SIG_BLOCK, _TERM)
        pid = os.getpid()
        try:
            with _restored():
                _enter(env, cwd, log_fd)
                code = _call(module, argv)
                _join_threads()
                if in_task:
                    # The command's exit handlers run now, into its log, as at its end.
                    with contextlib.suppress(BaseException):
                        atexit._run_exitfuncs()
                if os.getpid() != pid:
                    # A child the command forked came back here: it ends as it would
                    # have ended its interpreter, without the launcher's work.
                    flush_streams()
                    os._exit(code & 0xFF)
        finally:
            if in_task:
                signal.signal(signal.SIGTERM, _ignore_terminate)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _TERM)
        return code

    return run


def _call(module: str, argv: list[str]) -> int:
    sys.argv = [sys.executable, *argv[3:]]  # runpy sets argv[0] to the module's file
    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _TERM)
        try:
            run_module_as_main(module)
        finally:
            signal.pthread_sigmask(signal.SIG_BLOCK, _TERM)
        return 0
    except SystemExit as exc:
        return system_exit_code(exc)
    except _Terminated:
        return -signal.SIGTERM
    except BaseException:
        traceback.print_exc()
        return 1


def _join_threads() -> None:
    """Waits for the command's non-daemon threads, as an interpreter does at its end."""
    current = threading.current_thread()
    for thread in threading.enumerate():
        if thread is not current and not thread.daemon and thread.is_alive():
            with contextlib.suppress(RuntimeError):
                thread.join()


def _enter(env: dict[str, str], cwd: str, log_fd: int) -> None:
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    signal.signal(signal.SIGTERM, _raise_terminated)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.chdir(cwd)
    set_environ(env)
    unload(conditional_mismatch(os.environ))
    if sys.path:
        sys.path[0] = os.getcwd()  # as ``python -m`` started in ``cwd`` has it
    if "random" in sys.modules:
        sys.modules["random"].seed()
    tempfile.tempdir = None  # found again from this environment's TMPDIR


@contextlib.contextmanager
def _restored() -> Any:
    """Puts back, on the way out, what a command may change that the launcher relies on."""
    flush_streams()
    streams = (sys.stdin, sys.stdout, sys.stderr)
    environ, argv, path, cwd = dict(os.environ), list(sys.argv), list(sys.path), os.getcwd()
    handlers = {sig: signal.getsignal(sig) for sig in _SAVED_SIGNALS}
    tempdir = tempfile.tempdir
    mask = os.umask(0o022)
    os.umask(mask)
    fds: list[int] = []
    try:
        fds = [os.dup(fd) for fd in (0, 1, 2)]
        yield
    finally:
        signal.alarm(0)  # an alarm the command set dies with it, as with its interpreter
        signal.setitimer(signal.ITIMER_REAL, 0)
        for sig, handler in handlers.items():
            with contextlib.suppress(OSError, ValueError, TypeError):
                signal.signal(sig, handler)
        flush_streams()
        sys.stdin, sys.stdout, sys.stderr = streams
        for fd, saved in zip((0, 1, 2), fds, strict=False):
            try:
                os.dup2(saved, fd)
                os.close(saved)
            except OSError:  # the command closed our copy
                _reopen(fd)
        _usable_streams()
        os.chdir(cwd)
        set_environ(environ)
        sys.argv, sys.path[:] = argv, path
        os.umask(mask)
        tempfile.tempdir = tempdir


def _reopen(fd: int) -> None:
    with contextlib.suppress(OSError):
        target = os.open(os.devnull, os.O_RDWR)
        if target != fd:
            os.dup2(target, fd)
            os.close(target)


def _usable_streams() -> None:
    """New ``sys.stdout``/``sys.stderr`` on fds 1 and 2 when the command closed ours (a
    wrapper of ``sys.stderr.buffer`` it dropped closes the buffer under it)."""
    for name, fd in (("stdout", 1), ("stderr", 2)):
        stream = getattr(sys, name)
        buffer = getattr(stream, "buffer", stream)
        if stream is None or getattr(stream, "closed", True) or getattr(buffer, "closed", True):
            setattr(sys, name, open(fd, "w", encoding="utf-8", errors="backslashreplace", closefd=False, buffering=1))  # noqa: SIM115


def flush_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


def cache_main_details(names: Sequence[str]) -> None:
    """Reads ``runpy``'s details of the imported modules among ``names`` (in the server)."""
    get_details = getattr(runpy, "_get_module_details", None)
    if get_details is None:
        return
    for name in names:
        if name in sys.modules:
            # runpy warns that a preloaded module is already imported: true, and why we are here.
            with warnings.catch_warnings(), contextlib.suppress(Exception, SystemExit):
                warnings.simplefilter("ignore", RuntimeWarning)
                _MAIN_DETAILS[name] = get_details(name)  # fails for what is not runnable (a package)


def run_module_as_main(module: str) -> None:
    """``runpy.run_module(module, run_name="__main__", alter_sys=True)``, from the server's
    cached code when the module is still the preloaded one."""
    details = _MAIN_DETAILS.get(module)
    run_code = getattr(runpy, "_run_module_code", None)
    if details is None or run_code is None or module not in sys.modules:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        return
    _name, spec, code = details
    run_code(code, None, "__main__", spec)  # what run_module does with these details


def preload_with_env(name: str, overlay: dict[str, str]) -> None:
    """Imports ``name`` (when it can be) with ``overlay`` in the environment (in the server)."""
    saved = {k: os.environ.get(k) for k in overlay}
    os.environ.update(overlay)
    try:
        __import__(name)
        _CONDITIONALLY_LOADED[name] = overlay
    except Exception:
        pass  # optional (kfp is not a dependency of Stepwell's runtime)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def conditional_mismatch(env: Any) -> list[str]:
    """Top-level packages preloaded under an environment that ``env`` does not have."""
    return [
        name.split(".")[0]
        for name, overlay in _CONDITIONALLY_LOADED.items()
        if any(env.get(k) != v for k, v in overlay.items())
    ]


def unload(packages: list[str]) -> None:
    """Forgets every imported module of ``packages``."""
    if not packages:
        return
    for name in list(sys.modules):
        if name.split(".")[0] in packages:
            del sys.modules[name]
