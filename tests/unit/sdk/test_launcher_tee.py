"""The launcher's tee of the user command's output: the log gets every byte, the tail the last lines."""

from __future__ import annotations

import sys
from pathlib import Path

from stepwell.runtime.launcher import LOG_TAIL_LINES, run_command

# Lines written whole, a line written in pieces (separate pipe reads), a non-UTF-8 byte,
# and a last line without its newline.
_PRINTER = r"""
import os, sys, time
for i in range(50):
    os.write(1, b"line %d\n" % i)
for piece in (b"split ", b"across ", b"writes\n"):
    os.write(1, piece)
    time.sleep(0.02)
os.write(2, b"bad \xff byte\n")
os.write(1, b"no newline at the end")
"""


def test_the_log_gets_everything_and_the_tail_the_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "task.log"
    code, tail = run_command([sys.executable, "-c", _PRINTER], {}, str(tmp_path), str(log))
    assert code == 0
    expected = [f"line {i}" for i in range(50)] + ["split across writes", "bad \ufffd byte", "no newline at the end"]
    assert log.read_bytes().decode("utf-8", "replace").split("\n") == expected
    assert tail == expected[-LOG_TAIL_LINES:]


def test_an_empty_output_gives_an_empty_tail(tmp_path: Path) -> None:
    code, tail = run_command([sys.executable, "-c", "raise SystemExit(4)"], {}, str(tmp_path), str(tmp_path / "t.log"))
    assert (code, tail) == (4, [])
    assert (tmp_path / "t.log").read_bytes() == b""
