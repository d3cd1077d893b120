"""The local executor, in both start methods, with real processes and real signals.

``fork`` starts tasks from a fork server (a separate interpreter with the launcher
pre-imported); ``spawn`` starts a fresh interpreter per task. Both must behave the same.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from stepwell.runtime._launch_taskfile import TaskFile
from stepwell_scheduler.executors import LaunchRequest, LocalExecutor, TaskHandle
from stepwell_scheduler.executors.forkclient import ForkServerClient

WAIT = 30.0  # generous upper bounds for waiting loops; nothing asserts on elapsed time


def _wait_for(predicate: Callable[[], bool], timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return True
    return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] in (b"Z", b"X")


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


class Runner:
    """Builds task files for a command and submits them; collects exit callbacks."""

    def __init__(self, executor: LocalExecutor, root: Path) -> None:
        self.executor = executor
        self.root = root
        self.exited: dict[str, threading.Event] = {}
        self.handles: list[TaskHandle] = []
        self._count = 0
        executor.on_exit = self._on_exit

    def close(self) -> None:
        """Stops the executor and kills whatever a failed test left running."""
        self.executor.shutdown()
        for handle in self.handles:
            _kill(handle.pid)

    def _on_exit(self, key: str) -> None:
        self.exited.setdefault(key, threading.Event()).set()

    def submit(self, code: str, *args: str, env: dict[str, str] | None = None, task_file: str = "") -> TaskHandle:
        self._count += 1
        folder = self.root / f"t{self._count}"
        folder.mkdir(parents=True)
        task = TaskFile(
            run_id="run",
            pipeline_name="p",
            task_name=f"t{self._count}",
            pipeline_root=str(self.root / "artifacts"),
            executor_input={"inputs": {}, "outputs": {"outputFile": str(folder / "out" / "executor_output.json")}},
            container={"image": "python:3.11", "command": ["python3", "-c", textwrap.dedent(code)], "args": list(args)},
            scratch_dir=str(folder / "scratch"),
            result_file=str(folder / "result.json"),
            log_file=str(folder / "task.log"),
        )
        path = task_file or str(folder / "task.json")
        if not task_file:
            task.save(path)
        key = f"run\x00t{self._count}"
        self.exited[key] = threading.Event()
        return self.track(self.executor.submit(
            LaunchRequest(
                key=key,
                task_file=path,
                result_file=task.result_file,
                launcher_log=str(folder / "launcher.log"),
                cwd=str(folder),
                env=env if env is not None else dict(os.environ),
            )
        ))

    def track(self, handle: TaskHandle) -> TaskHandle:
        self.handles.append(handle)
        return handle

    def wait(self, handle: TaskHandle) -> int:
        assert self.exited[handle.key].wait(WAIT), f"task {handle.key!r} did not end"
        code = self.executor.poll(handle)
        assert code is not None
        return code

    @staticmethod
    def result(handle: TaskHandle) -> dict[str, Any]:
        return dict(json.loads(Path(handle.result_file).read_text()))

    @staticmethod
    def folder(handle: TaskHandle) -> Path:
        return Path(handle.result_file).parent


@pytest.fixture(params=["fork", "spawn"])
def runner(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Runner]:
    runner = Runner(LocalExecutor(start_method=request.param), tmp_path)
    try:
        yield runner
    finally:
        runner.close()


def test_tasks_are_separate_processes_with_their_exit_codes(runner: Runner) -> None:
    write_ids = """
        import os, sys
        open(sys.argv[1], "w").write(f"{os.getpid()} {os.getppid()} {os.getsid(0)}")
    """
    handles = [runner.submit(write_ids, str(runner.root / f"ids{i}")) for i in range(3)]
    for handle in handles:
        assert runner.wait(handle) == 0
        assert runner.result(handle)["status"] == "SUCCEEDED"
    pids = {h.pid for h in handles}
    assert len(pids) == 3
    assert os.getpid() not in pids
    assert runner.executor.fork_server_pid not in pids
    for i, handle in enumerate(handles):
        user_pid, parent, session = map(int, (runner.root / f"ids{i}").read_text().split())
        # The user command is a child of the task's launcher, in the launcher's own session.
        assert parent == handle.pid
        assert session == handle.pid
        assert user_pid not in pids


def test_failing_command_bad_task_file_and_signals_give_their_statuses(runner: Runner) -> None:
    failing = runner.submit("import sys; print('to stdout'); print('to stderr', file=sys.stderr); sys.exit(7)")
    assert runner.wait(failing) == 0  # the launcher reports the failure in its result
    result = runner.result(failing)
    assert result["status"] == "FAILED"
    assert result["exit_code"] == 7
    log = (runner.folder(failing) / "task.log").read_text()
    assert "to stdout" in log and "to stderr" in log

    missing = runner.submit("pass", task_file=str(runner.root / "no-such-task.json"))
    assert runner.wait(missing) == 2
    assert "cannot read task file" in runner.executor.logs(missing)

    sleeper = runner.submit("import time; time.sleep(600)")
    assert _wait_for(lambda: (runner.folder(sleeper) / "scratch").exists())
    os.kill(sleeper.pid, signal.SIGKILL)
    assert runner.wait(sleeper) == -signal.SIGKILL


def test_env_is_exactly_the_requested_one(runner: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEPWELL_TEST_LEAK", "must-not-reach-the-task")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "STEPWELL_TEST_VALUE": "passed through"}
    code = """
        import json, os, sys
        json.dump({"value": os.environ.get("STEPWELL_TEST_VALUE"), "leak": os.environ.get("STEPWELL_TEST_LEAK"),
                   "cwd": os.getcwd()}, open(sys.argv[1], "w"))
    """
    handle = runner.submit(code, str(runner.root / "env.json"), env=env)
    assert runner.wait(handle) == 0
    seen = json.loads((runner.root / "env.json").read_text())
    assert seen["value"] == "passed through"
    assert seen["leak"] is None
    assert seen["cwd"] == str(runner.folder(handle) / "scratch")


def test_cancel_kills_the_whole_process_tree(runner: Runner) -> None:
    code = """
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        open(sys.argv[1], "w").write(str(child.pid))
        time.sleep(600)
    """
    pid_file = runner.root / "grandchild.pid"
    handle = runner.submit(code, str(pid_file))
    assert _wait_for(lambda: pid_file.exists() and pid_file.read_text() != "")
    grandchild = int(pid_file.read_text())
    assert not _gone(grandchild)
    runner.executor.cancel(handle)
    # The launcher passes SIGTERM on to the command and reports the failure, or dies with it.
    if runner.wait(handle) == 0:
        assert runner.result(handle)["status"] == "FAILED"
    assert _wait_for(lambda: _gone(grandchild))
    assert _gone(handle.pid)


def test_a_restarted_executor_adopts_a_running_task(runner: Runner, tmp_path: Path) -> None:
    release = tmp_path / "release"
    code = """
        import os, sys, time
        while not os.path.exists(sys.argv[1]):
            time.sleep(0.02)
    """
    handle = runner.submit(code, str(release))
    task_file = str(runner.folder(handle) / "task.json")
    other = LocalExecutor(start_method=runner.executor.start_method)
    try:
        ended = threading.Event()
        other.on_exit = lambda key: ended.set()
        assert other.adopt(handle.key, handle.pid, handle.result_file, handle.launcher_log, "/not/the/task.json") is None
        adopted = other.adopt(handle.key, handle.pid, handle.result_file, handle.launcher_log, task_file)
        assert adopted is not None
        release.write_text("go")
        assert ended.wait(WAIT)
        assert other.poll(adopted) == 0
        assert runner.result(handle)["status"] == "SUCCEEDED"
    finally:
        other.shutdown()


def test_fork_server_exits_when_the_scheduler_dies_and_tasks_keep_running(tmp_path: Path) -> None:
    """A stand-in scheduler process starts a fork executor and a long task, then is killed -9."""
    script = textwrap.dedent(
        f"""
        import json, os, sys, time
        sys.path[:0] = {sys.path!r}
        from tests.integration.executors.test_local_executor import Runner
        from stepwell_scheduler.executors import LocalExecutor
        from pathlib import Path
        runner = Runner(LocalExecutor(start_method="fork"), Path({str(tmp_path)!r}))
        handle = runner.submit("import time; time.sleep(600)")
        print(json.dumps({{"server": runner.executor.fork_server_pid, "task": handle.pid}}), flush=True)
        time.sleep(600)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=os.getcwd())
    task = 0
    try:
        assert proc.stdout is not None
        pids = json.loads(proc.stdout.readline())
        server, task = int(pids["server"]), int(pids["task"])
        assert not _gone(server) and not _gone(task)
        proc.send_signal(signal.SIGKILL)
        proc.wait(WAIT)
        assert _wait_for(lambda: _gone(server)), "the fork server outlived its scheduler"
        assert not _gone(task), "a running task died with the scheduler"
    finally:
        proc.kill()
        proc.wait()
        if task:
            _kill(task)


def test_tasks_survive_a_fork_server_crash_and_a_new_server_takes_over(tmp_path: Path) -> None:
    runner = Runner(LocalExecutor(start_method="fork"), tmp_path)
    try:
        release = tmp_path / "release"
        code = """
            import os, sys, time
            while not os.path.exists(sys.argv[1]):
                time.sleep(0.02)
        """
        handle = runner.submit(code, str(release))
        first_server = runner.executor.fork_server_pid
        assert first_server is not None
        os.kill(first_server, signal.SIGKILL)
        assert _wait_for(lambda: runner.executor.fork_server_pid is None)
        assert not _gone(handle.pid)
        # The next task starts a new fork server; the orphaned one is still watched.
        quick = runner.submit("pass")
        assert runner.wait(quick) == 0
        assert runner.executor.fork_server_pid not in (None, first_server)
        release.write_text("go")
        assert runner.wait(handle) == 0
        assert runner.result(handle)["status"] == "SUCCEEDED"
    finally:
        runner.close()


def test_fork_server_client_redirects_output_and_reports_exit_codes(tmp_path: Path) -> None:
    """The fork server runs any ``module.main(argv)``; here a module in the child's folder."""
    (tmp_path / "fs_probe.py").write_text(
        textwrap.dedent(
            """
            import os, sys
            def main(argv):
                print("out", *argv)
                print("err", os.environ["PROBE"], file=sys.stderr)
                if argv[0] == "raise":
                    raise SystemExit(int(argv[1]))
                if argv[0] == "crash":
                    raise RuntimeError("boom")
                return int(argv[1])
            """
        )
    )
    codes: dict[int, int] = {}
    done = threading.Condition()

    def on_exit(tag: int, code: int) -> None:
        with done:
            codes[tag] = code
            done.notify_all()

    client = ForkServerClient(on_exit=on_exit)
    try:
        cases = {"return": ["ret", "5"], "raise": ["raise", "9"], "crash": ["crash"]}
        tags = {}
        for name, argv in cases.items():
            tags[name], pid = client.spawn(
                "fs_probe",
                argv,
                cwd=str(tmp_path),
                env={"PROBE": name},
                stdout=str(tmp_path / f"{name}.out"),
                stderr=str(tmp_path / f"{name}.err"),
            )
            assert pid > 0
        with done:
            assert done.wait_for(lambda: len(codes) == 3, WAIT)
        assert codes[tags["return"]] == 5
        assert codes[tags["raise"]] == 9
        assert codes[tags["crash"]] == 3  # a launcher-style failure: traceback on stderr
        assert (tmp_path / "return.out").read_text() == "out ret 5\n"
        assert (tmp_path / "return.err").read_text() == "err return\n"
        assert "RuntimeError: boom" in (tmp_path / "crash.err").read_text()
    finally:
        client.close()
    assert client.pid is None


PROBE_COMPONENT = '''from typing import *

from stepwell.runtime.executor import *

def probe(report: str, fail: bool) -> str:
    import json, os, sys
    with open(report, "w") as f:
        json.dump({"pid": os.getpid(), "ppid": os.getppid(), "argv": sys.argv[1:],
                   "cmdline": open("/proc/self/cmdline", "rb").read().decode().split("\\0"),
                   "cwd": os.getcwd(), "value": os.environ.get("STEPWELL_TEST_VALUE"),
                   "main": sys.modules["__main__"].__name__,
                   "kfp_sdk": hasattr(__import__("kfp"), "Client")}, f)
    if fail:
        raise ValueError("the component failed on purpose")
    print("probe ran")
    return "ok"
'''


def _submit_component(runner: Runner, report: Path, fail: bool, env: dict[str, str]) -> TaskHandle:
    runner._count += 1
    folder = runner.root / f"c{runner._count}"
    folder.mkdir(parents=True)
    out = folder / "out"
    task = TaskFile(
        run_id="run",
        pipeline_name="p",
        task_name=folder.name,
        pipeline_root=str(runner.root / "artifacts"),
        executor_input={
            "inputs": {"parameterValues": {"report": str(report), "fail": fail}},
            "outputs": {
                "parameters": {"Output": {"outputFile": str(out / "Output")}},
                "outputFile": str(out / "executor_output.json"),
            },
        },
        container={
            "image": "python:3.11",
            "command": ["python3", "-m", "stepwell.runtime.executor", "--component_source", PROBE_COMPONENT],
            "args": ["--executor_input", "{{$}}", "--function_to_execute", "probe"],
        },
        scratch_dir=str(folder / "scratch"),
        result_file=str(folder / "result.json"),
        log_file=str(folder / "task.log"),
        output_parameter_types={"Output": "STRING"},
    )
    task.save(str(folder / "task.json"))
    key = f"run\x00{folder.name}"
    runner.exited[key] = threading.Event()
    return runner.track(runner.executor.submit(
        LaunchRequest(
            key=key,
            task_file=str(folder / "task.json"),
            result_file=task.result_file,
            launcher_log=str(folder / "launcher.log"),
            cwd=str(folder),
            env=env,
        )
    ))


def _in_process(runner: Runner, same_python_env: bool = True) -> bool:
    """Whether a Python component runs in the task's process itself (else in a child)."""
    return runner.executor.start_method == "fork" and same_python_env


@pytest.mark.parametrize("python_env", ["same", "different"])
def test_stepwell_components_run_as_a_fresh_interpreter_would(runner: Runner, python_env: str) -> None:
    """With ``fork``, a Stepwell component's ``python3 -m stepwell.runtime.executor`` runs in
    the task's own process (unless the task changes ``PYTHON*`` variables); otherwise in a
    child of the launcher. It sees the same argv, folder and environment either way."""
    env = {**os.environ, "STEPWELL_TEST_VALUE": "seen"}
    if python_env == "different":
        env["PYTHONDONTWRITEBYTECODE"] = "x" + env.get("PYTHONDONTWRITEBYTECODE", "")
    report = runner.root / f"report-{python_env}.json"
    handle = _submit_component(runner, report, False, env)
    assert runner.wait(handle) == 0
    result = runner.result(handle)
    assert result["status"] == "SUCCEEDED", result["error"]
    assert result["parameters"] == {"Output": "ok"}
    assert "probe ran" in (runner.folder(handle) / "task.log").read_text()
    seen = json.loads(report.read_text())
    in_process = _in_process(runner, python_env == "same")
    assert (seen["pid"] == handle.pid) is in_process
    assert (seen["ppid"] == handle.pid) is not in_process
    assert seen["pid"] != os.getpid()
    assert seen["cwd"] == str(runner.folder(handle) / "scratch")
    assert seen["value"] == "seen"
    assert seen["main"] == "__main__"
    assert seen["kfp_sdk"]  # the full kfp SDK, not the fork server's preloaded runtime-only kfp
    assert seen["argv"][:2] == ["--component_source", PROBE_COMPONENT]
    exec_cmdline = seen["cmdline"][1:3] == ["-m", "stepwell.runtime.executor"]
    assert exec_cmdline is not in_process  # the task's process keeps the fork server's command line

    failing = _submit_component(runner, runner.root / f"fail-{python_env}.json", True, env)
    assert runner.wait(failing) == 0
    result = runner.result(failing)
    assert result["status"] == "FAILED"
    assert result["exit_code"] == 1
    assert "ValueError: the component failed on purpose" in (runner.folder(failing) / "task.log").read_text()


def test_kfp_compiled_components_give_the_same_result_in_process_or_not(runner: Runner) -> None:
    """A kfp-compiled lightweight component, as compiled (``sh -c PRELUDE ...``), gives the
    same result whether it runs in the task's process (``fork``) or a started Python
    (``spawn``)."""
    import warnings

    import yaml
    from kfp import compiler

    from tests.integration.executors.kfp_probe_component import kfp_probe_pipeline

    package = runner.root / "kfp.yaml"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiler.Compiler().compile(kfp_probe_pipeline, str(package))
    (executor,) = yaml.safe_load(package.read_text())["deploymentSpec"]["executors"].values()
    container = executor["container"]
    report = runner.root / "kfp-report.json"

    runner._count += 1
    folder = runner.root / f"k{runner._count}"
    folder.mkdir(parents=True)
    out = folder / "out"
    task = TaskFile(
        run_id="run",
        pipeline_name="kfp-probe",
        task_name="kfp-probe",
        pipeline_root=str(runner.root / "artifacts"),
        executor_input={
            "inputs": {"parameterValues": {"report": str(report)}},
            "outputs": {
                "parameters": {"Output": {"outputFile": str(out / "Output")}},
                "outputFile": str(out / "executor_output.json"),
            },
        },
        container={"image": container["image"], "command": container["command"], "args": container["args"]},
        scratch_dir=str(folder / "scratch"),
        result_file=str(folder / "result.json"),
        log_file=str(folder / "task.log"),
        output_parameter_types={"Output": "STRING"},
    )
    task.save(str(folder / "task.json"))
    key = f"run\x00{folder.name}"
    runner.exited[key] = threading.Event()
    handle = runner.track(runner.executor.submit(
        LaunchRequest(
            key=key,
            task_file=str(folder / "task.json"),
            result_file=task.result_file,
            launcher_log=str(folder / "launcher.log"),
            cwd=str(folder),
            env=dict(os.environ),
        )
    ))
    assert runner.wait(handle) == 0
    result = runner.result(handle)
    assert result["status"] == "SUCCEEDED", (result["error"], result["log_tail"])
    assert result["parameters"] == {"Output": "kfp ok"}
    seen = json.loads(report.read_text())
    assert (seen["pid"] == handle.pid) is _in_process(runner)
    assert seen["runtime"] == "true"
    assert seen["main"] == "__main__"
