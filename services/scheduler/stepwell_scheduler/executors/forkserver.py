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
  "inline": [MODULE], "error_file": PATH, "files": {PATH: TEXT}}`` (an empty
  ``stdout``/``stderr`` means ``/dev/null``; ``error_file``, optional, receives the reason
  when ``cwd``, the output files or the ``files`` cannot be made or written, and the child
  exits with status 3; ``files``, optional, are written by the server, in existing
  folders, before the child holds them: the task file, off the scheduler's process);
* server → scheduler, request socket: ``{"id": 7, "pid": 1234}`` (or ``{"id": 7, "error":
  "..."}``) per request;
* server → scheduler, events socket: ``{"ready": PID}`` once, ``{"exit": 1234, "code": 0}``
  when a child ends (``code`` as :attr:`subprocess.Popen.returncode`: ``-N`` for signal ``N``),
  and ``{"warmed": N}`` once the warm-up is over (``N`` no-op tasks succeeded).

A child starts a new session (so killing its process group kills everything the task
started), creates ``cwd`` and the output files' folders when missing, redirects stdin to
``/dev/null`` and stdout/stderr to the given files, enters ``cwd`` with exactly ``env``
as its environment, keeps the ``hold`` files open (a restarted scheduler recognises an
adopted task by them, since a forked child's command line is the server's), and runs
``MODULE.main(argv)`` as ``python -m MODULE *argv`` would, exiting with its status.

When the scheduler dies, the socket closes and the server exits; children already forked
keep running (they are in their own sessions), so a restarted scheduler adopts them.

A request is usually not forked for: whenever it has had no request for 2 ms, the server
forks *spare* children (two per CPU, from two to eight), which leave the server's session
and sockets and wait on sockets of their own. The server hands the scheduler's end of
each spare's socket over (``--spares-fd N``, a ``SOCK_SEQPACKET`` socket: ``{"spare":
PID}`` with the socket as a descriptor) and keeps none: the scheduler sends a request
straight to a spare, which writes the request's ``files``, holds the ``hold`` files and
runs it, with no round trip through the server. A spare that gets a request tells the
server so (its pid, on a pipe all spares share), and the server forks a new one; the
exits of the server's spares are reported with ``"spare": true``, the scheduler ignoring
those of spares it never used. A spare whose socket closes
before a request came (the scheduler is gone) ends. Only one spare waits while the
warm-up below runs, so that the later ones share what it warmed.

``inline`` modules (Stepwell's and KFP's executors) skip the second interpreter start
and the second process: when the launcher's user command is ``[sys.executable, "-m",
MODULE, ...]`` for one of them, the task's process runs MODULE as ``__main__`` itself
(:mod:`.inprocess`); any other command is started as usual.

Whenever it has been idle for a moment, until it has done so ten times, the server runs
a round of no-op tasks of the ``--warm-up`` modules itself (:mod:`.warmup`), so that what
every task would otherwise do to the shared heap for the first time is done once.

Only the standard library is imported here, besides the preloaded modules,
:mod:`.inprocess` and :mod:`.warmup`.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import gc
import importlib
import json
import math
import os
import select
import signal
import socket
import struct
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from stepwell_scheduler.executors import forkchild, inprocess, warmup

#: Modules every fork server imports before serving.
DEFAULT_PRELOAD = (
    "stepwell.runtime.launcher",
    "stepwell.runtime.executor",
    # Imported by the launcher when it checks a KFP component's pip prelude (~40 ms each time).
    "packaging.requirements",
    "importlib.metadata",
)
_LINE_LIMIT = 64 * 1024 * 1024
#: How long the server waits for a request before it runs a warm-up round.
_WARM_UP_IDLE_MS = 20
#: How long the server waits for a request before it forks a spare child (see ``ForkServer``).
_SPARE_IDLE_MS = 2
#: How many spares the server keeps waiting: a fan-out of this many tasks starts with no
#: ``fork`` on its path. A waiting spare costs little beyond its page tables.
SPARES = max(2, min(8, 2 * (os.cpu_count() or 1)))
#: The largest request a spare takes (one datagram; the scheduler sends a larger one to
#: the server, which forks for it; the socket's buffer may allow less).
SPARE_MESSAGE_LIMIT = 128 * 1024
#: Seconds without spares after one could not be forked.
_SPARE_RETRY_S = 1.0
#: ``sys.path[0]`` of the server (its start-up folder under ``python -m``); children get theirs.
_SERVER_PATH0 = sys.path[0] if sys.path else ""


def _send(sock: socket.socket, message: dict[str, Any]) -> None:
    sock.sendall(json.dumps(message, separators=(",", ":")).encode() + b"\n")


def _exit_code(status: int) -> int:
    return os.waitstatus_to_exitcode(status)


class ForkServer:
    """The serving loop (runs in the fork server process).

    Whenever no request has come for ``_SPARE_IDLE_MS``, the server forks *spare*
    children ahead of the next requests, up to ``SPARES`` of them, checking for a
    request between two forks, and hands each one's socket to the scheduler, which sends
    it a request directly: neither the ``fork`` nor the copy-on-write faults that follow
    it in the server, nor a round trip through the server, stand between a request and
    the task's start. Requests the server receives (no spare was free, or the request
    was too large for one datagram) are forked for.
    """

    def __init__(
        self, sock: socket.socket, events: socket.socket | None = None, spares: socket.socket | None = None
    ) -> None:
        self.sock = sock  # requests in, one reply out per request
        self.events = events or sock  # ready and exit notices
        self.spares_out = spares  # the spares' sockets, out to the scheduler (None: no spares)
        self._wake_r, self._wake_w = os.pipe()
        #: Spares write their pid here when they get a request (one 4-byte record each).
        self._taken_r, self._taken_w = os.pipe()
        self._children: set[int] = set()
        self._last_request = 0.0
        self._spare_failed = -_SPARE_RETRY_S
        #: Every spare forked and not reaped yet (its exit is reported as a spare's).
        self._spare_pids: set[int] = set()
        #: Spares handed to the scheduler that it has not said it took.
        self._given: set[int] = set()

    # ----- the loop -------------------------------------------------------------------

    def serve(self, warm: warmup.WarmUp | None = None) -> None:
        """Serves until the scheduler's end of the socket closes; runs ``warm``'s rounds
        whenever no request has come for a moment."""
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        os.set_blocking(self._taken_r, False)
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
        poller.register(self._taken_r, select.POLLIN)
        while True:
            warming = warm is not None and warm.left > 0
            # Spares are forked after a pause in the requests, one per turn of the loop (a
            # request between two is not kept waiting); one only while the warm-up runs
            # (the later ones share what it warmed; under steady load it may never end).
            want_spare = self.spares_out is not None and len(self._given) < (1 if warming else SPARES)
            # After a failure to fork one, none for a while (rather than a busy loop).
            want_spare = want_spare and time.monotonic() - self._spare_failed > _SPARE_RETRY_S
            if want_spare:
                idle = math.ceil(max(0.0, self._last_request + _SPARE_IDLE_MS / 1000 - time.monotonic()) * 1000)
            else:
                idle = _WARM_UP_IDLE_MS if warming else 1000
            events = poller.poll(idle)
            if not events and want_spare:
                self._fork_spare()
            elif not events and warming and warm is not None:
                if not warm.step():
                    _send(self.events, {"warmed": warm.ran})
                gc.freeze()  # what the round left behind is shared too
            self._reap()
            for fd, _mask in events:
                if fd == self._wake_r:
                    with contextlib.suppress(BlockingIOError):
                        while os.read(self._wake_r, 4096):
                            pass
                    continue
                if fd == self._taken_r:
                    self._note_taken()
                    continue
                data = self.sock.recv(1 << 16)
                if not data:
                    return  # the scheduler is gone; children keep running (spares end)
                buf += data
                if len(buf) > _LINE_LIMIT:
                    return
                *lines, buf = buf.split(b"\n")
                self._handle([(json.loads(line), line) for line in lines if line.strip()])
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
            message: dict[str, Any] = {"exit": pid, "code": _exit_code(status)}
            if pid in self._spare_pids:
                # Used or not: only the scheduler knows (it ignores the unused ones).
                self._spare_pids.discard(pid)
                self._given.discard(pid)
                message["spare"] = True
            _send(self.events, message)

    def _handle(self, requests: list[tuple[dict[str, Any], bytes]]) -> None:
        """Forks a child per request (as read together: a fan-out)."""
        if not requests:
            return
        self._last_request = time.monotonic()
        for request, _line in requests:
            self._fork_for(request)

    def _note_taken(self) -> None:
        """Reads which spares got a request (the scheduler sent it to them directly)."""
        with contextlib.suppress(BlockingIOError):
            while data := os.read(self._taken_r, 4096):
                self._given.difference_update(pid for (pid,) in struct.iter_unpack("i", data))
                self._last_request = time.monotonic()  # new spares after a pause, as for requests

    def _fork_for(self, request: dict[str, Any]) -> None:
        why = _write_files(request)
        if why:
            _send(self.sock, {"id": request.get("id"), "error": why})
            return
        held = _hold(request)  # opened now: no other child forked here inherits them
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            pid = os.fork()
        except OSError as err:
            pid = -1
            _send(self.sock, {"id": request.get("id"), "error": f"fork failed: {err}"})
        if pid == 0:
            self._exit_child(lambda: self._child(request))
        if pid > 0:
            _send(self.sock, {"id": request.get("id"), "pid": pid})
            self._children.add(pid)
        for fd in held:
            os.close(fd)

    # ----- the spare child ------------------------------------------------------------

    def _fork_spare(self) -> None:
        assert self.spares_out is not None
        try:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        except OSError:
            self._spare_failed = time.monotonic()  # out of descriptors: requests fork for themselves
            return
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            pid = os.fork()
        except OSError:
            ours.close()
            theirs.close()
            self._spare_failed = time.monotonic()  # out of processes or memory: as above
            return
        if pid == 0:
            ours.close()
            self._exit_child(lambda: self._await_request(theirs))
        theirs.close()
        self._children.add(pid)
        self._spare_pids.add(pid)
        try:
            socket.send_fds(self.spares_out, [json.dumps({"spare": pid}).encode()], [ours.fileno()])
            self._given.add(pid)
        except OSError:
            # The scheduler is gone (or takes no more): the spare sees its socket close and
            # ends; no more spares for a while rather than a fork loop.
            self._spare_failed = time.monotonic()
        ours.close()

    # ----- in the child ---------------------------------------------------------------

    def _exit_child(self, body: Callable[[], int]) -> NoReturn:
        """Runs ``body`` in a forked child and ends the child with its status."""
        code = 3
        try:
            code = body()
        except SystemExit as exc:
            code = inprocess.system_exit_code(exc)
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

    def _leave_server(self, name: str) -> None:
        """What every child does first: a session of its own, default signal handling,
        none of the server's descriptors."""
        os.setsid()
        forkchild.set_process_name(name)  # its command line stays the server's
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        self.sock.close()
        self.events.close()
        if self.spares_out is not None:
            self.spares_out.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
        os.close(self._taken_r)

    def _await_request(self, sock: socket.socket) -> int:
        """The spare's life: ready ahead of time, it waits for one request (from the
        scheduler, one datagram) and runs it, as a child forked for it would: its files
        written, its ``hold`` files held for its life."""
        self._leave_server("stepwell-spare")
        _scheduling(batch=True)
        try:
            data = sock.recv(SPARE_MESSAGE_LIMIT)
        except OSError:
            return 0
        _scheduling(batch=False)
        sock.close()
        if not data:
            return 0  # the scheduler is gone before a request came
        with contextlib.suppress(OSError):
            os.write(self._taken_w, struct.pack("i", os.getpid()))  # the server forks another
        os.close(self._taken_w)
        forkchild.set_process_name("stepwell-task")
        request = json.loads(data)
        why = _write_files(request)
        if why:
            request["start_error"] = why
        _hold(request)  # open for the task's life (close-on-exec), never closed here
        return self._run(request)

    def _child(self, request: dict[str, Any]) -> int:
        self._leave_server("stepwell-task")
        os.close(self._taken_w)
        return self._run(request)

    def _run(self, request: dict[str, Any]) -> int:
        cwd = str(request.get("cwd") or os.getcwd())
        try:
            if request.get("start_error"):
                raise OSError(str(request["start_error"]))
            forkchild.enter_folder(request, cwd)
        except OSError as err:
            forkchild.report_start_error(str(request.get("error_file") or ""), err)
            raise
        env = request.get("env")
        if isinstance(env, dict):
            inprocess.set_environ(env)
        if sys.path and sys.path[0] == _SERVER_PATH0:
            sys.path[0] = cwd  # as ``python -m`` run in ``cwd`` would have it
        if "random" in sys.modules:
            sys.modules["random"].seed()
        inline = [str(m) for m in request.get("inline") or []]
        if inline:
            import stepwell.runtime.launcher as launcher

            launcher.set_in_process_runner(inprocess.runner(frozenset(inline)))
        module_name = str(request["module"])
        module = sys.modules.get(module_name) or importlib.import_module(module_name)
        argv = [str(a) for a in request.get("argv") or []]
        sys.argv = [str(getattr(module, "__file__", module_name)), *argv]
        result = module.main(argv)
        return result if isinstance(result, int) else 0


def _scheduling(batch: bool) -> None:
    """A waiting spare is ``SCHED_BATCH``: the request that wakes it must not take the CPU
    from the scheduler that sent it, which has the rest of a fan-out to hand over (an
    ordinary process, woken, preempted it for 2-9 ms on a 2-vCPU machine). The task then
    runs with the policy the spare had before (``batch=False`` restores it). Best effort:
    where the kernel or the platform refuses, nothing changes."""
    global _BEFORE_BATCH
    if not hasattr(os, "sched_setscheduler") or not hasattr(os, "SCHED_BATCH"):
        return
    with contextlib.suppress(OSError):
        if batch:
            before = (os.sched_getscheduler(0), os.sched_getparam(0))
            os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
            _BEFORE_BATCH = before
        elif _BEFORE_BATCH is not None:
            policy, param = _BEFORE_BATCH
            _BEFORE_BATCH = None
            os.sched_setscheduler(0, policy, param)


#: A spare's own scheduling policy and parameters while it waits as ``SCHED_BATCH``.
_BEFORE_BATCH: tuple[int, Any] | None = None


def _write_files(request: dict[str, Any]) -> str:
    """Writes the request's ``files``; why one could not be written, or ""."""
    for path, text in (request.get("files") or {}).items():
        try:
            with open(str(path), "w", encoding="utf-8") as f:
                f.write(str(text))
        except OSError as err:
            return f"could not write {path}: {err}"
    return ""


def _hold(request: dict[str, Any]) -> list[int]:
    """The ``hold`` files, opened in the server before the fork (or the hand-over), so the
    child holds them from its first instant (close-on-exec: the launcher holds them, the
    user command does not)."""
    held: list[int] = []
    for path in request.get("hold") or []:
        with contextlib.suppress(OSError):
            held.append(os.open(str(path), os.O_RDONLY | os.O_CLOEXEC))
    return held


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stepwell_scheduler.executors.forkserver")
    parser.add_argument("--fd", type=int, required=True, help="this server's end of the request socket pair")
    parser.add_argument("--events-fd", type=int, default=-1, help="this server's end of the events socket pair")
    parser.add_argument(
        "--spares-fd", type=int, default=-1, help="the socket the spares' sockets go out on (none: no spares)"
    )
    parser.add_argument("--preload", action="append", default=[], help="a module to import before serving")
    parser.add_argument(
        "--warm-up", action="append", default=[], help="an in-process module to warm up on while idle"
    )
    args = parser.parse_args(argv)
    forkchild.set_process_name("stepwell-fork")
    sock = socket.socket(fileno=args.fd)
    sock.setblocking(True)
    events = socket.socket(fileno=args.events_fd) if args.events_fd >= 0 else None
    spares = socket.socket(fileno=args.spares_fd) if args.spares_fd >= 0 else None
    for name in (*DEFAULT_PRELOAD, *args.preload):
        try:
            importlib.import_module(name)
        except ImportError as err:
            print(f"stepwell fork server: cannot preload {name}: {err}", file=sys.stderr, flush=True)
    for name, overlay in inprocess.CONDITIONAL_PRELOAD.items():
        inprocess.preload_with_env(name, overlay)
    warmup.warm_metadata_cache()
    warmup.warm_regex_cache()
    inprocess.cache_main_details([*DEFAULT_PRELOAD, *args.preload, *inprocess.CONDITIONAL_PRELOAD])
    warm = warmup.WarmUp(frozenset(args.warm_up)) if args.warm_up else None
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        ForkServer(sock, events, spares).serve(warm)
    return 0


if __name__ == "__main__":
    sys.exit(main())
