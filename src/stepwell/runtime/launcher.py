"""The task launcher: runs one task inside its own OS process (or pod).

Usage: ``python -m stepwell.runtime.launcher TASK_FILE`` (format in
:mod:`stepwell.runtime._launch_taskfile`). It downloads input artifacts, substitutes
placeholders, runs the user's command as argv (never through an extra shell) with its
output tee'd to a log (or, under a fork server, a Python command in this process: see
:func:`set_in_process_runner`), collects output parameters and artifacts, uploads artifacts and
the log, and writes a result JSON. It imports only the standard library,
``stepwell.runtime`` and ``stepwell.storage`` so that a task starts fast.

Exit status: 0 when a result file was written (whatever the task's outcome), 2 when the
task file is unusable, 3 when the launcher itself failed before writing a result.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from stepwell.runtime._launch_placeholders import (
    PlaceholderError,
    Substitutions,
    parse_parameter_text,
    with_defaults,
)
from stepwell.runtime._launch_python import (
    is_kfp_component,
    is_python_component,
    python_shim,
    rewrite_python_command,
)
from stepwell.runtime._launch_taskfile import ArtifactSlot, TaskFile
from stepwell.runtime.paths import LOCAL_ROOT_ENV, is_remote
from stepwell.storage import StoreRouter, is_s3_uri

LOG_TAIL_LINES = 30
_PYTHONS = ("python3", "python")

#: Runs a user command in this process instead of a child, when it can: called with
#: ``(argv, env, cwd, log_fd)`` it runs the command with stdout and stderr on ``log_fd``
#: and returns its exit status, or returns None at once when the command needs a process
#: of its own. Only a fork server sets one, in a task's process (its stdout goes nowhere,
#: so nothing is lost by not teeing); a launcher started any other way runs every
#: command as a child.
InProcessRunner = Callable[[list[str], dict[str, str], str, int], "int | None"]
_in_process: InProcessRunner | None = None


def set_in_process_runner(runner: InProcessRunner | None) -> None:
    """Lets this task's process run user commands ``runner`` accepts itself (see above)."""
    global _in_process
    _in_process = runner


class TaskFailed(Exception):
    """The task cannot succeed; the message says why."""


def _log(message: str) -> None:
    print(f"[stepwell launcher] {message}", file=sys.stderr, flush=True)


def _needs_transfer(uri: str, path: str) -> bool:
    if is_s3_uri(uri):
        return True
    local = uri[len("file://") :] if uri.startswith("file://") else uri
    return os.path.abspath(local) != os.path.abspath(path)


def build_argv(task: TaskFile, executor_input: dict[str, Any]) -> list[str]:
    """The user command and args with placeholders substituted and ``python3`` made ``sys.executable``."""
    paths: dict[tuple[str, str], str] = {}
    for side, slots_by_name in (("inputs", task.input_artifacts), ("outputs", task.output_artifacts)):
        for name, slots in slots_by_name.items():
            if slots:
                paths[(side, name)] = slots[0].path
    subs = Substitutions(executor_input, paths, task.job_placeholders)
    container = task.container
    argv = subs.expand(list(container.get("command") or []) + list(container.get("args") or []))
    if not argv:
        raise TaskFailed("the container spec has no command and no args")
    if argv[0] in _PYTHONS:
        argv[0] = sys.executable
    return argv


def task_env(task: TaskFile) -> dict[str, str]:
    """The user process's environment: ours, the spec's ``env``, the scratch artifact root,
    and ``python3`` on ``PATH`` meaning this interpreter."""
    env = dict(os.environ)
    for item in task.container.get("env") or []:
        env[str(item.get("name", ""))] = str(item.get("value", ""))
    env[LOCAL_ROOT_ENV] = task.scratch_dir
    env["PATH"] = os.pathsep.join([python_shim(task.scratch_dir), env.get("PATH", os.defpath)])
    return env


def localize_remote_uris(task: TaskFile, executor_input: dict[str, Any]) -> dict[str, Any]:
    """For KFP's executor: remote artifact URIs replaced by their local paths.

    KFP's executor maps ``minio://b/k`` to ``/minio/b/k`` (kfp-facts §3.6) and honours no
    local root, so a task would write outside its scratch folder (or fail without root
    rights). Handing it the local path as the URI makes ``path == uri`` inside the task;
    the launcher uploads from there to the real URI and records the real URI.
    """
    for side, slots_by_name in (("inputs", task.input_artifacts), ("outputs", task.output_artifacts)):
        entries = (executor_input.get(side) or {}).get("artifacts") or {}
        for name, slots in slots_by_name.items():
            artifacts = (entries.get(name) or {}).get("artifacts") or []
            for artifact, slot in zip(artifacts, slots, strict=False):
                if is_remote(str(artifact.get("uri", ""))):
                    artifact["uri"] = slot.path
    return executor_input


def _prepare_log(task: TaskFile, notes: list[str]) -> None:
    if not notes:
        return
    echo = not _stderr_is(task.log_file)
    for note in notes:
        _append_log(task.log_file, f"[stepwell launcher] {note}")
        if echo:
            _log(note)


def _stderr_is(path: str) -> bool:
    """True when our stderr is the file at ``path`` (a local executor points it at the
    task log, so the launcher's own messages and the command's output are one log)."""
    try:
        ours, theirs = os.fstat(2), os.stat(path)
    except OSError:
        return False
    return (ours.st_dev, ours.st_ino) == (theirs.st_dev, theirs.st_ino)


def download_inputs(task: TaskFile, stores: StoreRouter) -> None:
    """Fetches remote (or relocated) input artifacts to their local paths."""
    for name, slots in task.input_artifacts.items():
        for slot in slots:
            if not slot.uri or not _needs_transfer(slot.uri, slot.path):
                continue
            try:
                stores.for_uri(slot.uri).get(slot.uri, slot.path)
            except Exception as err:
                raise TaskFailed(f"could not download input artifact {name!r} from {slot.uri}: {err}") from err


def prepare_outputs(task: TaskFile, executor_input: dict[str, Any]) -> None:
    """Creates the parent folders of every output path the command may write."""
    outputs = executor_input.get("outputs") or {}
    files = [p.get("outputFile", "") for p in (outputs.get("parameters") or {}).values()]
    files.append(outputs.get("outputFile", ""))
    files += [slot.path for slots in task.output_artifacts.values() for slot in slots]
    for path in files:
        if path:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)


def run_command(argv: list[str], env: dict[str, str], cwd: str, log_path: str) -> tuple[int, list[str]]:
    """Runs ``argv``, tees stdout+stderr to ``log_path`` and our stdout; returns exit code and last lines.

    A command the in-process runner takes (see :func:`set_in_process_runner`) writes to
    ``log_path`` alone, and its last lines are read back from there."""
    tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)
    os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
    if _in_process is not None:
        with open(log_path, "ab") as log:
            start = log.tell()
            code = _in_process(argv, env, cwd, log.fileno())
        if code is not None:
            return code, _read_tail(log_path, start)
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    except OSError as err:
        raise TaskFailed(f"could not start {argv[0]!r}: {err}") from err

    def forward(signum: int, _frame: Any) -> None:
        proc.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, forward)
    out = sys.stdout.buffer
    assert proc.stdout is not None
    # Whatever the pipe holds at a time, not line by line: a line costs a system call less,
    # and only the last lines of a chunk are kept for the tail.
    pipe = proc.stdout.fileno()  # read raw: nothing went through the file object's buffer
    partial: list[bytes] = []  # the pieces of a line whose end has not come yet
    with open(log_path, "ab") as log:
        while chunk := os.read(pipe, 1 << 16):
            log.write(chunk)
            log.flush()
            out.write(chunk)
            if b"\n" not in chunk:
                partial.append(chunk)
                continue
            lines = chunk.split(b"\n")
            lines[0] = b"".join([*partial, lines[0]])
            last = lines.pop()
            partial = [last] if last else []
            tail.extend(line.decode("utf-8", "replace") for line in lines[-LOG_TAIL_LINES:])
        if partial:
            tail.append(b"".join(partial).decode("utf-8", "replace"))
        out.flush()
    return proc.wait(), list(tail)


def _read_tail(path: str, start: int) -> list[str]:
    """The last lines of ``path`` written after offset ``start``."""
    with open(path, "rb") as f:
        end = f.seek(0, os.SEEK_END)
        f.seek(max(start, end - (1 << 16)))
        text = f.read().decode("utf-8", "replace")
    return text.splitlines()[-LOG_TAIL_LINES:]


def read_executor_output(path: str) -> dict[str, Any]:
    """The ExecutorOutput the command wrote, or ``{}`` when it wrote none."""
    if not path or not os.path.exists(path):
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError) as err:
        raise TaskFailed(f"the executor output file {path} is not valid JSON: {err}") from err
    return data if isinstance(data, dict) else {}


def collect_parameters(task: TaskFile, executor_output: dict[str, Any]) -> dict[str, Any]:
    """Output parameters: ExecutorOutput values first, then per-parameter files (kfp-facts §3.4)."""
    values = dict(executor_output.get("parameterValues") or {})
    declared = (task.executor_input.get("outputs") or {}).get("parameters") or {}
    for name, spec in declared.items():
        if name in values:
            continue
        path = spec.get("outputFile", "")
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError:
            raise TaskFailed(f"output parameter {name!r} was not written (expected file {path})") from None
        try:
            values[name] = parse_parameter_text(text, task.output_parameter_types.get(name, "STRING"))
        except ValueError as err:
            raise TaskFailed(f"output parameter {name!r} has an invalid value: {err}") from err
    return values


def upload_artifacts(
    task: TaskFile, executor_output: dict[str, Any], stores: StoreRouter
) -> dict[str, list[dict[str, Any]]]:
    """Uploads every output artifact (files or folders) and returns its record."""
    reported = executor_output.get("artifacts") or {}
    provisioned = (task.executor_input.get("outputs") or {}).get("artifacts") or {}
    collected: dict[str, list[dict[str, Any]]] = {}
    for name, slots in task.output_artifacts.items():
        overrides = (reported.get(name) or {}).get("artifacts") or []
        bases = (provisioned.get(name) or {}).get("artifacts") or []
        records = []
        for i, slot in enumerate(slots):
            override = overrides[i] if i < len(overrides) else {}
            base = (bases[i] if i < len(bases) else {}).get("metadata") or {}
            records.append(_upload_one(name, slot, base, override, stores))
        collected[name] = records
    return collected


def _upload_one(
    name: str,
    slot: ArtifactSlot,
    base_metadata: dict[str, Any],
    override: dict[str, Any],
    stores: StoreRouter,
) -> dict[str, Any]:
    uri = override.get("uri") or slot.uri
    if uri == slot.path and slot.uri:
        uri = slot.uri  # a URI localized for KFP's executor (see localize_remote_uris)
    path = override.get("custom_path") or override.get("customPath") or slot.path
    metadata = {**base_metadata, **(override.get("metadata") or {})}
    size, sha = 0, ""
    if os.path.exists(path):
        try:
            size, sha = stores.for_uri(uri).put(path, uri)
        except Exception as err:
            raise TaskFailed(f"could not upload output artifact {name!r} to {uri}: {err}") from err
    else:
        _log(f"output artifact {name!r} has no file at {path}; recording it without content")
    return {"uri": uri, "metadata": metadata, "size": size, "sha256": sha, "schema_title": slot.schema_title}


def upload_log(task: TaskFile, stores: StoreRouter) -> str:
    """Stores the log at ``log_uri``; returns the URI (empty when it could not be stored)."""
    if not task.log_uri or not os.path.exists(task.log_file):
        return ""
    try:
        stores.for_uri(task.log_uri).put_file(task.log_file, task.log_uri)
    except Exception as err:
        _log(f"could not upload the log to {task.log_uri}: {err}")
        return ""
    return task.log_uri


def run_task(task: TaskFile, stores: StoreRouter | None = None) -> dict[str, Any]:
    """Runs the task and returns the result record (see the task-file module)."""
    stores = stores or StoreRouter()
    result: dict[str, Any] = {
        "status": "FAILED",
        "exit_code": None,
        "parameters": {},
        "artifacts": {},
        "error": "",
        "log_tail": "",
        "log_uri": "",
        "started_at": time.time(),
        "command_started_at": None,
        "finished_at": None,
    }
    tail: list[str] = []
    try:
        os.makedirs(task.scratch_dir, exist_ok=True)
        executor_input = with_defaults(task.executor_input, task.input_definitions)
        download_inputs(task, stores)
        prepare_outputs(task, executor_input)
        raw = [str(a) for a in [*(task.container.get("command") or []), *(task.container.get("args") or [])]]
        if is_kfp_component(raw):
            executor_input = localize_remote_uris(task, executor_input)
        try:
            argv = build_argv(task, executor_input)
        except PlaceholderError as err:
            raise TaskFailed(f"cannot build the command line: {err}") from err
        argv, extra_env, notes = rewrite_python_command(argv, task.scratch_dir)
        image = str(task.container.get("image") or "")
        if image and not is_python_component(task.container):
            notes.insert(0, f"warning: image {image!r} is not pulled; the command runs as a local process")
        _prepare_log(task, notes)
        env = {**task_env(task), **extra_env}
        result["command_started_at"] = time.time()
        code, tail = run_command(argv, env, task.scratch_dir, task.log_file)
        result["exit_code"] = code
        if code != 0:
            raise TaskFailed(f"the command exited with status {code}")
        executor_output = read_executor_output(executor_input["outputs"].get("outputFile", ""))
        result["parameters"] = collect_parameters(task, executor_output)
        result["artifacts"] = upload_artifacts(task, executor_output, stores)
        result["status"] = "SUCCEEDED"
    except TaskFailed as err:
        result["error"] = str(err)
    except Exception as err:  # the launcher's own bug or an unexpected store error
        result["error"] = f"launcher error: {type(err).__name__}: {err}"
    if result["status"] != "SUCCEEDED":
        _append_log(task.log_file, f"[stepwell launcher] task failed: {result['error']}")
        result["log_tail"] = "\n".join([*tail, f"[stepwell launcher] {result['error']}"][-LOG_TAIL_LINES:])
    result["log_uri"] = upload_log(task, stores)
    result["finished_at"] = time.time()
    return result


def _append_log(path: str, line: str) -> None:
    try:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
    except OSError:
        pass


def _write_result(path: str, text: str) -> None:
    """Writes the result record with one file creation, not a temporary file and a
    rename: a metadata operation less per task, each of which can wait a millisecond
    behind other writes to the disk. Nobody reads the record before this process has
    ended (the scheduler harvests an attempt on its exit, or after a takeover when its
    process is gone), and a record cut short by a kill does not parse, which reads as
    no result at all, as a missing file would."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: ``python -m stepwell.runtime.launcher TASK_FILE``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or args[0] in ("-h", "--help"):
        print("usage: python -m stepwell.runtime.launcher TASK_FILE", file=sys.stderr)
        return 2
    try:
        task = TaskFile.load(args[0])
    except (OSError, ValueError, TypeError) as err:
        print(f"error: cannot read task file {args[0]}: {err}", file=sys.stderr)
        return 2
    try:
        result = run_task(task)
        _write_result(task.result_file, json.dumps(result, default=str))
    except Exception as err:
        print(f"error: the launcher failed: {err}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
