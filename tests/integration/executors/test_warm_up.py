"""The fork server's warm-up: it runs no-op tasks in its own process before it serves,
and leaves nothing behind that a task could notice. Each check runs in a fresh
interpreter, as the server does, or through a real fork server."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

from stepwell_scheduler.executors import LocalExecutor
from tests.integration.executors.component_tasks import result_of, submit, wait_for

_PROBE = """
import atexit, json, linecache, logging, os, signal, sys, tempfile
atexit.register(print, "a handler of the server")
from stepwell_scheduler.executors import inprocess, warmup
import stepwell.runtime.launcher
for name, overlay in inprocess.CONDITIONAL_PRELOAD.items():
    inprocess.preload_with_env(name, overlay)
kfp_before = sys.modules.get("kfp")
def state():
    return {"path": list(sys.path), "handlers": len(logging.root.handlers), "level": logging.root.level,
            "cwd": os.getcwd(), "env": dict(os.environ), "exit_handlers": atexit._ncallbacks(),
            "tempdir": tempfile.tempdir, "sigterm": str(signal.getsignal(signal.SIGTERM)),
            "mask": sorted(signal.pthread_sigmask(signal.SIG_BLOCK, [])), "lines": len(linecache.cache)}
before = state()
tmp = os.environ['TMPDIR']  # not tempfile.gettempdir(): it would fix tempfile.tempdir
folders = set(os.listdir(tmp))
%s
after = state()
print(json.dumps({
    "ran": ran, "same": before == after, "diff": {k: (before[k], after[k]) for k in before if before[k] != after[k]}, "kfp_kept": sys.modules.get("kfp") is kfp_before,
    "components": [n for n, m in sys.modules.items()
                   if str(getattr(m, "__file__", "")).startswith(("<stepwell component", tmp))],
    "left_folders": sorted(set(os.listdir(tmp)) - folders),
}))
"""


def _probe(body: str, tmp_path: Path) -> dict[str, object]:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", _PROBE % body], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""  # the warm-up's own output went nowhere
    lines = out.stdout.strip().splitlines()
    # The server's own exit handler still runs at its end, after the warm-up.
    assert lines[-1] == "a handler of the server", lines
    return dict(json.loads(lines[-2]))


def test_the_warm_up_runs_both_kinds_and_leaves_the_process_as_it_was(tmp_path: Path) -> None:
    seen = _probe(
        'ran = warmup.warm_up(frozenset(["stepwell.runtime.executor", "kfp.dsl.executor_main"]), rounds=2)', tmp_path
    )
    assert seen["ran"] == 4  # two rounds of a Stepwell and a KFP no-op, each SUCCEEDED
    # sys.path, logging, working folder, environment, exit handlers, temporary folder,
    # SIGTERM's handler and mask, linecache
    assert seen["same"] is True, seen["diff"]
    assert seen["kfp_kept"] is True  # the preloaded runtime-only kfp, not a new import
    assert seen["components"] == []
    assert seen["left_folders"] == []


def test_the_warm_up_never_starts_a_process(tmp_path: Path) -> None:
    # A prelude whose requirement is not installed would run in a shell and pip-install:
    # the warm-up refuses it before any process starts (the shell would leave the marker).
    marker = tmp_path / "a shell ran"
    seen = _probe(
        "container = warmup.kfp_container('2.0')\n"
        f"prelude = {'touch ' + shlex.quote(str(marker)) + ' && '!r} + container['command'][2].lstrip()\n"
        "container['command'][2] = prelude.replace(\"'kfp==2.0'\", \"'stepwell-not-installed==1.0'\")\n"
        "ran = warmup.warm_up(frozenset(['kfp.dsl.executor_main']), rounds=1, containers=[container])",
        tmp_path,
    )
    assert seen["ran"] == 0
    assert not marker.exists()
    assert seen["same"] is True
    assert seen["left_folders"] == []


LOGGING_COMPONENT = '''from typing import *

from stepwell.runtime.executor import *

def configures_logging(marker: str) -> str:
    import logging
    logging.basicConfig(level=logging.DEBUG, format="CONFIGURED %(levelname)s %(message)s")
    logging.getLogger("user").debug("debug line")
    return marker
'''


def test_a_component_after_the_warm_up_configures_logging_as_it_likes(
    executor: LocalExecutor, tmp_path: Path
) -> None:
    # KFP's executor configured the root logger in the server's warm-up: it must be undone.
    assert executor.wait_warmed(30)
    handle, ended = submit(executor, tmp_path, LOGGING_COMPONENT, "configures_logging", "m")
    assert wait_for(executor, handle, ended) == 0
    result = result_of(handle)
    assert result["status"] == "SUCCEEDED", result["error"]
    assert result["parameters"] == {"Output": "m"}
    assert "CONFIGURED DEBUG debug line" in (tmp_path / "configures_logging" / "task.log").read_text()
