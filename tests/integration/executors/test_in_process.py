"""Python components run in the task's own process (``fork``): the launcher's bookkeeping
survives what the user code does to the process, and a kill still leaves a result or a log.

Real fork server, real processes and signals; the component is Stepwell's lightweight
executor (``python3 -m stepwell.runtime.executor``), which the fork server runs in-process.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from stepwell_scheduler.executors import LocalExecutor
from tests.integration.executors.component_tasks import WAIT, result_of, submit, wait_for

UNRULY = '''from typing import *

from stepwell.runtime.executor import *

def unruly(marker: str) -> str:
    import atexit, io, os, signal, sys
    print("unruly started", flush=True)
    atexit.register(lambda: os.write(1, b"unruly exit handler ran\\n"))
    os.chdir("/")
    os.environ["HOME"] = "/nowhere"
    os.environ.pop("PATH", None)
    sys.path.insert(0, "/nowhere")
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sys.stdout = io.StringIO()  # swallowed: never reaches the log
    print("lost")
    sys.stderr.write("unruly wrote to stderr\\n")
    return "done " + marker
'''

SLEEPER = '''from typing import *

from stepwell.runtime.executor import *

def sleeper(marker: str) -> str:
    import time
    print("sleeper started", flush=True)
    open(marker, "w").close()
    time.sleep(600)
    return "never"
'''

FORKER = '''from typing import *

from stepwell.runtime.executor import *

def forker(marker: str) -> int:
    import os, sys
    pid = os.fork()
    if pid == 0:
        sys.exit(7)  # the child ends as its interpreter would, not through the launcher
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)
'''

REWRAPPER = '''from typing import *

from stepwell.runtime.executor import *

def rewrapper(marker: str) -> str:
    import io, sys
    sys.stderr = io.TextIOWrapper(sys.stderr.buffer, encoding="utf-8", line_buffering=True)
    print("rewrapped stderr", file=sys.stderr)
    return marker
'''

EXITER = '''from typing import *

from stepwell.runtime.executor import *

def exiter(marker: str) -> str:
    import os
    print("exiter says goodbye", flush=True)
    os._exit(7)
'''


def test_the_launcher_finishes_its_work_whatever_the_code_did_to_the_process(
    executor: LocalExecutor, tmp_path: Path
) -> None:
    handle, ended = submit(executor, tmp_path, UNRULY, "unruly", "m1")
    assert wait_for(executor, handle, ended) == 0
    result = result_of(handle)
    assert result["status"] == "SUCCEEDED", result["error"]
    assert result["parameters"] == {"Output": "done m1"}
    log = (tmp_path / "unruly" / "task.log").read_text()
    assert "unruly started" in log
    assert "unruly wrote to stderr" in log
    assert "unruly exit handler ran" in log  # the command's exit handlers ran, into its log
    assert "lost" not in log
    # The log was stored where the task said, from the task's folder (not from "/").
    assert result["log_uri"] == f"file://{tmp_path}/logs/unruly.log"
    assert "unruly started" in (tmp_path / "logs" / "unruly.log").read_text()
    # The launcher's notes are written to the log once, though its stderr is the log too.
    assert log.count("is not pulled") <= 1


def test_sigterm_ends_the_code_and_the_launcher_still_reports(executor: LocalExecutor, tmp_path: Path) -> None:
    marker = tmp_path / "sleeping"
    handle, ended = submit(executor, tmp_path, SLEEPER, "sleeper", str(marker))
    deadline = time.monotonic() + WAIT
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert marker.exists(), "the component did not start"
    os.kill(handle.pid, 15)  # what a cancel or a timeout sends first
    assert wait_for(executor, handle, ended) == 0  # the launcher wrote its result
    result = result_of(handle)
    assert result["status"] == "FAILED"
    assert result["exit_code"] == -15
    assert result["error"] == "the command exited with status -15"
    assert "sleeper started" in result["log_tail"]
    assert "sleeper started" in (tmp_path / "logs" / "sleeper.log").read_text()


def test_code_that_ends_the_process_leaves_its_output_for_the_scheduler(
    executor: LocalExecutor, tmp_path: Path
) -> None:
    handle, ended = submit(executor, tmp_path, EXITER, "exiter", "m3")
    assert wait_for(executor, handle, ended) == 7
    assert not Path(handle.result_file).exists()
    # What the scheduler shows for an attempt that left no result: the task log's end.
    assert "exiter says goodbye" in executor.logs(handle)


def test_a_child_the_code_forks_ends_without_the_launchers_work(executor: LocalExecutor, tmp_path: Path) -> None:
    handle, ended = submit(executor, tmp_path, FORKER, "forker", "m4", output_type="NUMBER_INTEGER")
    assert wait_for(executor, handle, ended) == 0
    result = result_of(handle)
    assert result["status"] == "SUCCEEDED", result["error"]
    # The child's own exit status, not the 0 of a launcher that went on to report.
    assert result["parameters"] == {"Output": 7}


def test_the_launcher_still_writes_to_stderr_after_the_code_rewrapped_it(
    executor: LocalExecutor, tmp_path: Path
) -> None:
    handle, ended = submit(executor, tmp_path, REWRAPPER, "rewrapper", "m5", unwritten_artifact=True)
    assert wait_for(executor, handle, ended) == 0
    result = result_of(handle)
    assert result["status"] == "SUCCEEDED", result["error"]
    log = (tmp_path / "rewrapper" / "task.log").read_text()
    assert "rewrapped stderr" in log
    assert "output artifact 'model' has no file" in log  # written by the launcher after the code
