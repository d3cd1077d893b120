"""The scheduler's side of the fork server (:mod:`stepwell_scheduler.executors.forkserver`).

:class:`ForkServerClient` starts the server as a fresh interpreter with two socket pairs:
on the request socket, :meth:`spawn` (any thread; one at a time) sends a request and reads
its reply itself, so starting a task involves no hand-off between scheduler threads (each
one can cost a GIL switch interval in a busy process); on the events socket, a reader
thread receives exit notices and calls ``on_exit``. If the server dies, a request in
flight fails with :class:`ForkServerError`, the ``on_lost`` callback learns which children
lost their parent (they keep running), and the next :meth:`spawn` starts a new server.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import logging
import os
import select
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from stepwell_scheduler.executors.forkserver import SPARE_MESSAGE_LIMIT

log = logging.getLogger(__name__)

SERVER_MODULE = "stepwell_scheduler.executors.forkserver"

#: ``on_exit(tag, exit_code)``: a child forked for request ``tag`` has ended.
ExitHook = Callable[[int, int], None]
#: ``on_lost(tags)``: the server died; these children are still running, unwatched.
LostHook = Callable[[list[int]], None]


#: Requests sent to the server together at most: a chunk's requests (a few KiB each, the
#: environment) and their answers stay well within a socket's buffers, so that neither
#: side blocks writing while the other does too.
_CHUNK = 32


class ForkServerError(OSError):
    """The fork server could not start a child (or is gone).

    ``sent`` tells whether the request had reached the server: if it had, a child may
    exist, so the caller must not simply start the task another way.
    """

    def __init__(self, message: str, *, sent: bool = False) -> None:
        super().__init__(message)
        self.sent = sent


@dataclass
class Spawn:
    """One child to fork (see :meth:`ForkServerClient.spawn` for the fields)."""

    module: str
    argv: list[str]
    cwd: str
    env: Mapping[str, str]
    stdout: str = ""
    stderr: str = ""
    hold: list[str] = field(default_factory=list)
    inline: list[str] = field(default_factory=list)
    error_file: str = ""
    #: Files the server writes before the child starts (path: text), in existing folders.
    files: dict[str, str] = field(default_factory=dict)

    def message(self) -> dict[str, Any]:
        """The request's fields, as the fork server reads them."""
        return {
            "module": self.module,
            "argv": self.argv,
            "cwd": self.cwd,
            "env": dict(self.env),
            "stdout": self.stdout,
            "stderr": self.stderr,
            "hold": self.hold,
            "inline": self.inline,
            "error_file": self.error_file,
            **({"files": self.files} if self.files else {}),
        }


class _Server:
    """One running fork server: its process, sockets and what it has started."""

    def __init__(
        self, proc: subprocess.Popen[bytes], requests: socket.socket, events: socket.socket, spares: socket.socket
    ) -> None:
        self.proc = proc
        self.requests = requests
        self.events = events
        #: Where the server's spares arrive (read by :meth:`ForkServerClient._take_spares`).
        self.spares = spares
        self.buffer = b""  # unread reply bytes (guarded by the client's request lock)
        self.tags: dict[int, int] = {}  # pid -> request tag, children still running
        self.early: dict[int, int] = {}  # pid -> exit code, exits seen before their reply
        #: Spares received and not used yet, oldest first: pid, our end of its socket, the
        #: largest request it takes (guarded by the client's state lock).
        self.ready: collections.deque[tuple[int, socket.socket, int]] = collections.deque()
        #: Spares being sent a request (their exit, if any, waits in ``early``).
        self.sending: set[int] = set()
        self.lost = False
        #: Its children were handed to ``on_lost``: a child answered later goes there too.
        self.orphaned = False

    def close_spares(self) -> None:
        """Lets the unused spares go (they see their socket close and end) and takes no
        more in. The channel is only shut down here: the events thread polls it and
        closes it when the server is gone (closed from another thread, its number could
        be reused under the poll)."""
        for _pid, sock, _limit in self.ready:
            sock.close()
        self.ready.clear()
        with contextlib.suppress(OSError):
            self.spares.shutdown(socket.SHUT_RDWR)


class ForkServerClient:
    """Starts and talks to one fork server process."""

    def __init__(
        self,
        python: str = sys.executable,
        preload: Iterable[str] = (),
        warm_up: Iterable[str] = (),
        on_exit: ExitHook = lambda tag, code: None,
        on_lost: LostHook = lambda tags: None,
        reply_timeout: float = 60.0,
    ) -> None:
        self.python = python
        self.preload = list(preload)
        #: In-process modules the server warms up on while idle (:mod:`.warmup`).
        self.warm_up = list(warm_up)
        #: Set once the running server has finished its warm-up.
        self.warmed = threading.Event()
        self.on_exit = on_exit
        self.on_lost = on_lost
        self.reply_timeout = reply_timeout
        self._ids = itertools.count(1)
        self._request_lock = threading.Lock()  # one request/reply at a time; starting
        self._state_lock = threading.Lock()  # guards _server and each server's tags/early
        self._server: _Server | None = None
        self._closed = False

    # ----- life cycle -------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The server's pid while it runs."""
        server = self._server
        return server.proc.pid if server is not None and server.proc.poll() is None else None

    def start(self) -> None:
        """Starts the server now (it preloads in the background; :meth:`spawn` waits)."""
        with self._request_lock:
            self._ensure_started()

    def _ensure_started(self) -> _Server:
        if self._closed:
            raise ForkServerError("the fork server client is closed")
        server = self._server
        if server is not None and not server.lost and server.proc.poll() is None:
            return server
        if server is not None:
            self._mark_lost(server)
        self.warmed.clear()  # a new server warms up anew
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        events_ours, events_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        spares_ours, spares_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        argv = [
            self.python, "-m", SERVER_MODULE,
            "--fd", str(theirs.fileno()), "--events-fd", str(events_theirs.fileno()),
            "--spares-fd", str(spares_theirs.fileno()),
        ]  # fmt: skip
        for name in self.preload:
            argv += ["--preload", name]
        for name in self.warm_up:
            argv += ["--warm-up", name]
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                pass_fds=(theirs.fileno(), events_theirs.fileno(), spares_theirs.fileno()),
                close_fds=True,
                # Out of the terminal's process group: Ctrl-C reaches the scheduler, which
                # then closes the sockets; the server never outlives it for long.
                start_new_session=True,
            )
        except OSError as err:
            ours.close()
            events_ours.close()
            spares_ours.close()
            raise ForkServerError(f"cannot start the fork server: {err}") from err
        finally:
            theirs.close()
            events_theirs.close()
            spares_theirs.close()
        ours.settimeout(self.reply_timeout)
        spares_ours.setblocking(False)
        server = _Server(proc, ours, events_ours, spares_ours)
        with self._state_lock:
            self._server = server
        threading.Thread(target=self._read_events, args=(server,), name=f"forkserver-{proc.pid}", daemon=True).start()
        log.debug("fork server started (pid %d)", proc.pid)
        return server

    def close(self, timeout: float = 5.0) -> None:
        """Stops the server (children keep running) and waits for it to exit."""
        with self._state_lock:
            self._closed = True
            server = self._server
        if server is None:
            return
        for sock in (server.requests, server.events):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        with self._request_lock, self._state_lock:
            server.close_spares()
        try:
            server.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait(timeout)

    # ----- requests ---------------------------------------------------------------------

    def spawn(
        self,
        module: str,
        argv: list[str],
        *,
        cwd: str,
        env: Mapping[str, str],
        stdout: str = "",
        stderr: str = "",
        hold: Iterable[str] = (),
        inline: Iterable[str] = (),
        error_file: str = "",
    ) -> tuple[int, int]:
        """Forks a child running ``module.main(argv)``; returns ``(tag, pid)``.

        ``on_exit(tag, code)`` is called when the child ends (from the events thread, or
        from this call if the child ended before its reply was read). ``hold``: files the
        child keeps open (its adoption marker). ``inline``: modules the child may run as
        ``python -m MODULE`` commands in its own process rather than a new interpreter
        (see the fork server's module documentation). ``error_file``: where the child
        writes why it could not start (its folder or output files could not be made).
        """
        (result,) = self.spawn_many(
            [Spawn(module, argv, cwd, env, stdout, stderr, list(hold), list(inline), error_file)]
        )
        if isinstance(result, ForkServerError):
            raise result
        return result

    def spawn_many(self, children: Sequence[Spawn]) -> list[tuple[int, int] | ForkServerError]:
        """Forks a child per item, as :meth:`spawn` does one, with the requests sent
        together (``_CHUNK`` at a time) and their answers read together: a fan-out of
        tasks costs the server's work for each, but a round trip per chunk. Returns
        ``(tag, pid)`` or the error, per item, in order."""
        results: list[tuple[int, int] | ForkServerError] = []
        for i in range(0, len(children), _CHUNK):
            results += self._spawn_chunk(children[i : i + _CHUNK])
        return results

    def _spawn_chunk(self, children: Sequence[Spawn]) -> list[tuple[int, int] | ForkServerError]:
        if not children:
            return []
        tags = [next(self._ids) for _ in children]
        lines = [
            json.dumps({"id": tag, **child.message()}, separators=(",", ":")).encode()
            for tag, child in zip(tags, children, strict=True)
        ]
        answers: dict[int, tuple[int, int] | ForkServerError] = {}
        with self._request_lock:
            try:
                server = self._ensure_started()
            except ForkServerError as err:
                return [err for _ in children]  # not sent: the caller may start them another way
            # Straight to the spares first: no round trip through the server.
            for tag, line in zip(tags, lines, strict=True):
                pid = self._hand_to_spare(server, tag, line)
                if pid:
                    answers[tag] = (tag, pid)
            rest = [(tag, line) for tag, line in zip(tags, lines, strict=True) if tag not in answers]
            if rest:
                answers.update(
                    self._send_to_server(server, [tag for tag, _ in rest], b"".join(line + b"\n" for _tag, line in rest))
                )
        return [answers[tag] for tag in tags]

    def _send_to_server(self, server: _Server, tags: list[int], data: bytes) -> dict[int, tuple[int, int] | ForkServerError]:
        """Sends requests to the server and reads the answers of ``tags``: ``(tag, pid)``
        or the error, per tag."""
        for attempt in (1, 2):  # a server found dead is replaced once
            try:
                server.requests.sendall(data)
                break
            except OSError as err:
                self._mark_lost(server)
                # Whole requests of a chunk may have reached the server before it died:
                # only a lone request is safe to send again (a partial line is ignored).
                if attempt == 2 or len(tags) != 1:
                    gone = ForkServerError(f"the fork server is gone: {err}", sent=len(tags) > 1)
                    return {tag: gone for tag in tags}
                try:
                    server = self._ensure_started()
                except ForkServerError as err2:
                    return {tag: err2 for tag in tags}
        # Answers come as children exist, not in request order.
        answers: dict[int, tuple[int, int] | ForkServerError] = {}
        failure: ForkServerError | None = None
        while len(answers) < len(tags):
            try:
                reply = self._read_reply(server)
            except OSError as err:
                self._mark_lost(server)
                failure = ForkServerError(f"no answer from the fork server: {err}", sent=True)
                break
            tag = reply.get("id")
            if tag not in tags or tag in answers:
                self._mark_lost(server)  # out of step with the server: start anew
                failure = ForkServerError(f"unexpected fork server reply {reply}", sent=True)
                break
            if "pid" not in reply:
                why = str(reply.get("error") or f"unexpected fork server reply {reply}")
                answers[tag] = ForkServerError(why, sent=True)
                continue
            answers[tag] = (tag, int(reply["pid"]))
            self._register(server, tag, int(reply["pid"]))
        for tag in tags:
            if tag not in answers:
                assert failure is not None
                answers[tag] = failure
        return answers

    def _hand_to_spare(self, server: _Server, tag: int, line: bytes) -> int:
        """Sends request ``tag`` to a waiting spare of ``server`` (the oldest); its pid, or
        0 when none took it (none waits, the request is too large, or the server is gone).
        The spare's exit is watched from before the request can run."""
        if not server.ready:
            self._take_spares(server)  # none came in yet (the events thread takes them in)
        while True:
            with self._state_lock:
                if server.lost or not server.ready or len(line) > server.ready[0][2]:
                    return 0
                pid, sock, _limit = server.ready.popleft()
                server.sending.add(pid)
            try:
                sock.send(line)  # one datagram: the spare takes it whole, or not at all
                sent = True
            except OSError:
                sent = False  # it died waiting (killed): its exit is no task's
            sock.close()
            if not sent:
                with self._state_lock:
                    server.sending.discard(pid)
                    server.early.pop(pid, None)
                continue
            # Watched first (an exit seen while it was being sent waits in ``early``), then
            # no longer "being sent": no moment where its exit would pass for a spare's.
            self._register(server, tag, pid)
            with self._state_lock:
                server.sending.discard(pid)
            return pid

    def _take_spares(self, server: _Server) -> None:
        """Receives the spares the server has handed over since the last look."""
        while True:
            try:
                data, fds, _flags, _address = socket.recv_fds(server.spares, 256, 1)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # closed: the server is gone
            if not data and not fds:
                return
            for fd in fds:
                os.set_inheritable(fd, False)  # recv_fds leaves them inheritable
            sock = socket.socket(fileno=fds[0]) if fds else None
            for extra in fds[1:]:
                os.close(extra)
            try:
                pid = int(json.loads(data)["spare"])
            except (ValueError, KeyError, TypeError):
                if sock is not None:
                    sock.close()
                continue
            if sock is None:
                continue
            sock.setblocking(True)
            limit = min(SPARE_MESSAGE_LIMIT, sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) // 2)
            with self._state_lock:
                if server.lost:
                    sock.close()
                else:
                    server.ready.append((pid, sock, limit))

    def _register(self, server: _Server, tag: int, pid: int) -> None:
        """Watches the child ``pid`` of request ``tag``, as soon as its answer is read:
        an exit seen before is delivered now; a server already found dead hands it to
        ``on_lost`` (its other children went there already)."""
        with self._state_lock:
            orphaned = server.orphaned
            code = None if orphaned else server.early.pop(pid, None)
            if not orphaned and code is None:
                server.tags[pid] = tag
        if orphaned:
            try:
                self.on_lost([tag])
            except Exception:
                log.exception("lost-children callback failed")
        elif code is not None:
            self._call_on_exit(tag, code)

    def _read_reply(self, server: _Server) -> dict[str, Any]:
        while b"\n" not in server.buffer:
            data = server.requests.recv(1 << 16)
            if not data:
                raise ConnectionResetError("the fork server closed its socket")
            server.buffer += data
        line, server.buffer = server.buffer.split(b"\n", 1)
        return dict(json.loads(line))

    def _mark_lost(self, server: _Server) -> None:
        server.lost = True
        with contextlib.suppress(OSError):
            server.requests.close()
        with self._state_lock:
            server.close_spares()

    # ----- the events thread ------------------------------------------------------------

    def _read_events(self, server: _Server) -> None:
        buf = b""
        # Also takes the spares in as they come (a couple of ms after a start), so that a
        # start finds them waiting rather than receiving them itself.
        poller = select.poll()
        events, spares = server.events.fileno(), server.spares.fileno()
        poller.register(events, select.POLLIN)
        poller.register(spares, select.POLLIN)
        try:
            while True:
                ready = dict(poller.poll())
                if spares in ready:
                    if ready[spares] & (select.POLLHUP | select.POLLNVAL | select.POLLERR):
                        poller.unregister(spares)  # closed: the server is gone, or we are
                    else:
                        self._take_spares(server)
                if events not in ready:
                    continue
                try:
                    data = server.events.recv(1 << 16)
                except OSError:
                    data = b""
                if not data:
                    break
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line.strip():
                        self._event(server, json.loads(line))
        finally:
            self._lost(server)

    def _event(self, server: _Server, message: dict[str, Any]) -> None:
        if "warmed" in message:
            log.debug("fork server %d warmed up on %s no-op tasks", server.proc.pid, message["warmed"])
            self.warmed.set()
            return
        if "exit" not in message:
            return
        pid, code = int(message["exit"]), int(message["code"])
        with self._state_lock:
            tag = server.tags.pop(pid, None)
            if tag is None:
                if message.get("spare") and pid not in server.sending:
                    # A spare that never ran a request (it died waiting): no task's exit.
                    for spare in [spare for spare in server.ready if spare[0] == pid]:
                        server.ready.remove(spare)
                        spare[1].close()
                    return
                server.early[pid] = code  # its spawn() has not read the reply yet
                return
        self._call_on_exit(tag, code)

    def _call_on_exit(self, tag: int, code: int) -> None:
        try:
            self.on_exit(tag, code)
        except Exception:
            log.exception("exit callback failed for request %d", tag)

    def _lost(self, server: _Server) -> None:
        with self._state_lock:
            server.lost = True
            server.orphaned = not self._closed
            orphans, server.tags = list(server.tags.values()), {}
            closed = self._closed
            server.close_spares()
        with contextlib.suppress(OSError):
            server.events.close()
        with contextlib.suppress(OSError):
            server.spares.close()
        if not closed:
            log.warning("the fork server (pid %d) exited unexpectedly (status %s)", server.proc.pid, server.proc.poll())
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.proc.wait(5)
        if orphans and not closed:
            try:
                self.on_lost(orphans)
            except Exception:
                log.exception("lost-children callback failed")
