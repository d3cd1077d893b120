"""Starting Stepwell's service binaries as real OS processes for tests."""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_ports(count: int) -> list[int]:
    """``count`` different free ports: each held until all are found (one at a time,
    the kernel may hand out the same free port twice)."""
    held = [socket.socket() for _ in range(count)]
    try:
        for sock in held:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in held]
    finally:
        for sock in held:
            sock.close()


@dataclass
class ServiceProcess:
    """A service binary running as a child process, and the port it reported."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: list[str] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_service(
    name: str, args: list[str], env: dict[str, str], timeout: float = 60.0, killed_by: str = ""
) -> ServiceProcess:
    """Starts ``stepwell-<name>`` and waits for its ``stepwell-<name> listening on 127.0.0.1:PORT`` line.

    ``killed_by``: a process that printed this and was killed (SIGKILL) before it said it
    listens is returned all the same, with port 0 (a scheduler's failpoint, reached
    while it was starting: its engine drives the runs it resumes at once)."""
    proc = subprocess.Popen(
        [str(BIN / f"stepwell-{name}"), *args],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    # Raw reads, not readline: a buffered reader can hold the line we wait for while
    # select() reports nothing more to read.
    selector = selectors.DefaultSelector()
    selector.register(fd, selectors.EVENT_READ)
    lines: list[str] = []
    pending = b""
    pattern = re.compile(rf"stepwell-{name} listening on 127\.0\.0\.1:(\d+)")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not selector.select(timeout=0.5):
            if proc.poll() is not None:
                break
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for raw in complete:
            line = raw.decode(errors="replace") + "\n"
            lines.append(line)
            match = pattern.search(line)
            if match:
                service = ServiceProcess(name, proc, int(match.group(1)), lines)
                # Keep draining the pipe so a chatty service never blocks on a full one.
                threading.Thread(target=_drain, args=(fd, lines), daemon=True).start()
                return service
    if killed_by:
        with contextlib.suppress(subprocess.TimeoutExpired):
            if proc.wait(5) == -signal.SIGKILL and any(killed_by in line for line in lines):
                return ServiceProcess(name, proc, 0, lines)
    proc.kill()
    raise RuntimeError(f"stepwell-{name} did not start; it printed:\n{''.join(lines)}{pending.decode(errors='replace')}")


def _drain(fd: int, lines: list[str]) -> None:
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            return
        if not chunk:
            return
        lines.append(chunk.decode(errors="replace"))
