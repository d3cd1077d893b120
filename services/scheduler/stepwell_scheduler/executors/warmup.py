"""No-op tasks run through the launcher inside the fork server, while it is idle.

A task forked from the server pays, in page faults, for every page of the shared heap it
writes, and CPython writes where nobody would expect it: the first calls of a function
count up to its specialization and then rewrite its bytecode in place, lazy imports and
caches fill on first use. Run once per task, all of that happened in every task. Running
a few no-op tasks here (a KFP lightweight component as the KFP compiler emits it, and a
Stepwell one), a round at a time whenever the server has had no request for a moment,
does it once for all of them: measured with ``benchmarks/task_start.py``'s harness,
1,330 → 1,180 page faults and about 10.4 → 7.7 ms of CPU per KFP no-op task. Ten rounds
take about 130 ms; the first, with its imports, most of it.

The warm-up can only run a Python component in-process; a command that would start a
process (a pip prelude whose requirements are missing, say) stops it. Whatever it changes
that a task could notice is put back: its folder is deleted, the standard streams went to
``/dev/null`` meanwhile, and the root logger, ``sys.modules``, ``sys.path``, the temporary
folder and ``linecache`` are as before (KFP's executor configures logging and imports the
component as a module); exit handlers are not run, and SIGTERM keeps its disposition.

Only the standard library and ``stepwell.runtime`` are imported here.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import linecache
import logging
import os
import shutil
import sys
import tempfile
from typing import Any

from stepwell_scheduler.executors import inprocess

#: How many times each no-op task runs: CPython 3.11 specializes a function's bytecode
#: after its eighth call.
ROUNDS = 10

_STEPWELL_SOURCE = "from typing import *\n\nfrom stepwell.runtime.executor import *\n\ndef noop(x: int) -> int:\n    return x\n"
_KFP_SOURCE = (
    "\nimport kfp\nfrom kfp import dsl\nfrom kfp.dsl import *\nfrom typing import *\n\n"
    "def noop(x: int) -> int:\n    return x\n\n"
)


class _WouldStartProcess(Exception):
    """The warm-up's command needs a process of its own."""


def kfp_container(kfp_version: str) -> dict[str, Any]:
    """A KFP lightweight component's command and args, in the shape kfp 2.x compiles them
    (kfp-facts §3.2: pip prelude, then the loader that writes the source and runs the
    executor)."""
    prelude = (
        '\nif ! [ -x "$(command -v pip)" ]; then\n    python3 -m ensurepip || python3 -m ensurepip --user'
        " || apt-get install python3-pip\nfi\n\nPIP_DISABLE_PIP_VERSION_CHECK=1 python3 -m pip install --quiet"
        f" --no-warn-script-location 'kfp=={kfp_version}' '--no-deps'"
        ' \'typing-extensions>=3.7.4,<5; python_version<"3.9"\' && "$0" "$@"\n'
    )
    loader = (
        'program_path=$(mktemp -d)\n\nprintf "%s" "$0" > "$program_path/ephemeral_component.py"\n'
        "_KFP_RUNTIME=true python3 -m kfp.dsl.executor_main --component_module_path"
        ' "$program_path/ephemeral_component.py" "$@"\n'
    )
    return {
        "command": ["sh", "-c", prelude, "sh", "-ec", loader, _KFP_SOURCE],
        "args": ["--executor_input", "{{$}}", "--function_to_execute", "noop"],
    }


def stepwell_container() -> dict[str, Any]:
    """A Stepwell lightweight component's command and args."""
    return {
        "command": ["python3", "-m", "stepwell.runtime.executor", "--component_source", _STEPWELL_SOURCE],
        "args": ["--executor_input", "{{$}}", "--function_to_execute", "noop"],
        # As the KFP warm-up has it: without it the in-process runner would unload the
        # preloaded runtime-only kfp, here in the server.
        "env": [{"name": name, "value": value} for name, value in _kfp_overlay().items()],
    }


def _kfp_overlay() -> dict[str, str]:
    return dict(inprocess.CONDITIONAL_PRELOAD.get("kfp.dsl.executor_main", {}))


def warm_up(allowed: frozenset[str], rounds: int = ROUNDS, containers: list[dict[str, Any]] | None = None) -> int:
    """Runs ``rounds`` rounds of the no-op tasks (``containers``: by default one of each
    module in ``allowed`` that is imported); returns how many succeeded."""
    warm = WarmUp(allowed, rounds, containers)
    while warm.step():
        pass
    return warm.ran


class WarmUp:
    """The warm-up, a round at a time: the fork server runs a round whenever it has been
    idle for a moment, so that it is ready to fork at once and the warm-up costs no task
    a wait (it runs while a ``stepwell run`` starts its services, say)."""

    def __init__(
        self, allowed: frozenset[str], rounds: int = ROUNDS, containers: list[dict[str, Any]] | None = None
    ) -> None:
        self.ran = 0
        self.left = rounds
        self._containers = containers
        self._allowed = allowed

    def step(self) -> bool:
        """Runs one round; True while rounds are left."""
        if self.left <= 0:
            return False
        self.left -= 1
        try:
            import stepwell.runtime.launcher as launcher
            from stepwell.runtime._launch_python import installed_versions
        except ImportError:
            self.left = 0
            return False
        if self._containers is None:
            allowed = self._allowed
            self._containers = [stepwell_container()] if "stepwell.runtime.executor" in allowed else []
            kfp = installed_versions().get("kfp")
            if kfp is not None and "kfp.dsl.executor_main" in allowed and "kfp" in sys.modules:
                self._containers.append(kfp_container(kfp[0]))
        self.ran += _round(launcher, self._allowed, self._containers)
        return self.left > 0


def _round(launcher: Any, allowed: frozenset[str], containers: list[dict[str, Any]]) -> int:
    run = inprocess.runner(allowed, in_task=False)

    def only_in_process(argv: list[str], env: dict[str, str], cwd: str, log_fd: int) -> int | None:
        code = run(argv, env, cwd, log_fd)
        if code is None:
            raise _WouldStartProcess(argv[0])
        return code

    ran = 0
    saved_tempdir = tempfile.tempdir  # mkdtemp() would fix it from this environment
    root = tempfile.mkdtemp(prefix="stepwell-warm-up-")
    modules, path = dict(sys.modules), list(sys.path)
    handlers, level = list(logging.root.handlers), logging.root.level
    launcher.set_in_process_runner(only_in_process)
    try:
        with _quiet():
            for j, container in enumerate(containers):
                if _run_one(launcher, os.path.join(root, str(j)), container):
                    ran += 1
    finally:
        launcher.set_in_process_runner(None)
        # Modules imported on the way stay (that is part of the point); the components'
        # own modules go.
        for name in [n for n, m in sys.modules.items() if n not in modules and _is_component(m, root)]:
            del sys.modules[name]
        sys.modules.update(modules)
        sys.path[:] = path
        logging.root.handlers[:] = handlers
        logging.root.setLevel(level)
        shutil.rmtree(root, ignore_errors=True)
        tempfile.tempdir = saved_tempdir
        for key in [k for k in linecache.cache if str(k).startswith("<stepwell component")]:
            del linecache.cache[key]
    return ran


def _is_component(module: Any, root: str) -> bool:
    where = str(getattr(module, "__file__", "") or "")
    return where.startswith((root, "<stepwell component"))


def _run_one(launcher: Any, folder: str, container: dict[str, Any]) -> bool:
    from stepwell.runtime._launch_taskfile import TaskFile

    out = os.path.join(folder, "out")
    task = TaskFile(
        run_id="warm-up",
        pipeline_name="warm-up",
        task_name="noop",
        pipeline_root=os.path.join(folder, "artifacts"),
        executor_input={
            "inputs": {"parameterValues": {"x": 1}},
            "outputs": {
                "parameters": {"Output": {"outputFile": os.path.join(out, "Output")}},
                "outputFile": os.path.join(out, "output_metadata.json"),
            },
        },
        container={"image": "python:3.11", **container},
        scratch_dir=os.path.join(folder, "scratch"),
        result_file=os.path.join(folder, "result.json"),
        log_file=os.path.join(folder, "task.log"),
        log_uri="file://" + os.path.join(folder, "artifacts", "executor-logs"),
        output_parameter_types={"Output": "NUMBER_INTEGER"},
    )
    os.makedirs(folder)
    task.save(os.path.join(folder, "task.json"))
    cwd = os.getcwd()
    try:
        if launcher.main([os.path.join(folder, "task.json")]) != 0:
            return False
        with open(task.result_file, encoding="utf-8") as f:
            return bool(json.load(f).get("status") == "SUCCEEDED")
    except (OSError, ValueError):  # the launcher reports _WouldStartProcess as a failure
        return False
    finally:
        os.chdir(cwd)


@contextlib.contextmanager
def _quiet() -> Any:
    """Standard streams to ``/dev/null`` (the warm-up's messages are nobody's business)."""
    inprocess.flush_streams()
    saved = [os.dup(fd) for fd in (1, 2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        yield
    finally:
        inprocess.flush_streams()
        for fd, copy in zip((1, 2), saved, strict=True):
            os.dup2(copy, fd)
            os.close(copy)
        os.close(devnull)


def warm_regex_cache() -> None:
    """Compiles the patterns ``argparse`` matches options with, into ``re``'s cache, so that
    each forked command line parser (Stepwell's and KFP's executors use one) finds them."""
    with contextlib.suppress(Exception):
        parser = argparse.ArgumentParser(prog="warm-up", description="warm-up")
        parser.add_argument("--first", type=str, required=True, help="warm-up")
        parser.add_argument("--second", type=str, help="warm-up")
        parser.add_argument("--flag", action="store_true", help="warm-up")
        parser.parse_known_args(["--first", "a", "--second=b", "--flag", "--other", "c", "d"])


def warm_metadata_cache() -> None:
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
