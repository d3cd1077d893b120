"""What a fork server's child does to become a task's process: its folders, its output
files and its name (the fork server's module documentation has the protocol). Only the
standard library: the fork server imports nothing it does not need."""

from __future__ import annotations

import contextlib
import os
from typing import Any


def _redirect(fd: int, path: str, flags: int) -> None:
    target = os.open(path or os.devnull, flags, 0o644)
    if target != fd:
        os.dup2(target, fd)
        os.close(target)


def enter_folder(request: dict[str, Any], cwd: str) -> None:
    """Makes the child's folders (here, in the task's process, not in the scheduler:
    a folder costs as much as a file), redirects its output and enters ``cwd``."""
    os.makedirs(cwd, exist_ok=True)
    for stream in ("stdout", "stderr"):
        folder = os.path.dirname(str(request.get(stream) or ""))
        if folder and folder != cwd:
            os.makedirs(folder, exist_ok=True)
    _redirect(0, "", os.O_RDONLY)
    _redirect(1, str(request.get("stdout") or ""), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    _redirect(2, str(request.get("stderr") or ""), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.chdir(cwd)


def report_start_error(path: str, err: OSError) -> None:
    """Writes why the child cannot start where the scheduler looks for it (best effort)."""
    if not path:
        return
    with contextlib.suppress(OSError), open(path, "w", encoding="utf-8") as f:
        f.write(str(err))


def set_process_name(name: str) -> None:
    """The name ``ps -o comm``/``top`` show (Linux; at most 15 bytes; best effort)."""
    with contextlib.suppress(OSError), open("/proc/self/comm", "w") as f:
        f.write(name[:15])
