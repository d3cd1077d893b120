"""Cancelling a task signals its process group, or the process alone while it has no
group of its own yet: the fork server reports a child's pid before the child calls
``setsid``, and a cancel in between must still stop it. Real processes."""

from __future__ import annotations

import signal
import subprocess
import sys

from stepwell_scheduler.executors.local import _signal_group


def test_a_process_without_a_group_of_its_own_is_signalled_alone() -> None:
    # Not a group leader: there is no process group with its pid.
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert _signal_group(proc.pid, signal.SIGTERM)
        assert proc.wait(10) == -signal.SIGTERM
    finally:
        proc.kill()


def test_a_group_leader_is_signalled_with_its_group() -> None:
    script = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    try:
        assert _signal_group(proc.pid, signal.SIGKILL)
        assert proc.wait(10) == -signal.SIGKILL
    finally:
        proc.kill()


def test_a_gone_process_is_reported_gone() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(10)
    assert not _signal_group(proc.pid, signal.SIGTERM)
