"""The task file: everything the launcher needs to run one task, as JSON.

The scheduler writes it; ``python -m stepwell.runtime.launcher TASK_FILE`` reads it.
Standard library only. Format (version 1)::

    {
      "version": 1,
      "run_id": "...", "pipeline_name": "...", "task_name": "outer/inner",
      "pipeline_root": "s3://bucket/root",
      "executor_input": {...},         # KFP ExecutorInput JSON, parameters resolved
      "input_definitions": {...},      # component inputDefinitions.parameters (for defaults)
      "output_parameter_types": {"p": "NUMBER_INTEGER"},
      "container": {"image": "...", "command": [...], "args": [...], "env": [{"name","value"}]},
      "input_artifacts":  {"name": [{"uri": "...", "path": "..."}]},
      "output_artifacts": {"name": [{"uri": "...", "path": "...", "schema_title": "system.Dataset"}]},
      "scratch_dir": "/.../task-scratch",      # becomes STEPWELL_LOCAL_ARTIFACT_ROOT
      "result_file": "/.../result.json",
      "log_file": "/.../task.log",
      "log_uri": "<run root>/<task>/<attempt>/executor-logs",
      "job_placeholders": {"pipeline_job_name": "...", "pipeline_job_uuid": "...",
                           "pipeline_task_name": "...", "pipeline_root": "...", ...}
    }

The result file the launcher writes::

    {"status": "SUCCEEDED"|"FAILED", "exit_code": 0, "parameters": {...},
     "artifacts": {"name": [{"uri", "metadata", "size", "sha256", "schema_title"}]},
     "error": "", "log_tail": "", "log_uri": "...",
     "started_at": <unix time>, "command_started_at": <unix time>, "finished_at": <unix time>}
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from typing import Any

TASK_FILE_VERSION = 1


@dataclass
class ArtifactSlot:
    """One artifact the task reads or writes: its URI and its local path."""

    uri: str
    path: str
    schema_title: str = "system.Artifact"


@dataclass
class TaskFile:
    """The launcher's instructions for one task attempt."""

    run_id: str
    pipeline_name: str
    task_name: str
    pipeline_root: str
    executor_input: dict[str, Any]
    container: dict[str, Any]
    scratch_dir: str
    result_file: str
    log_file: str
    log_uri: str = ""
    input_definitions: dict[str, Any] = field(default_factory=dict)
    output_parameter_types: dict[str, str] = field(default_factory=dict)
    input_artifacts: dict[str, list[ArtifactSlot]] = field(default_factory=dict)
    output_artifacts: dict[str, list[ArtifactSlot]] = field(default_factory=dict)
    #: Values of ``{{$.pipeline_job_name}}`` and the other run/task placeholders, without ``$.``.
    job_placeholders: dict[str, str] = field(default_factory=dict)
    version: int = TASK_FILE_VERSION

    def to_json(self) -> str:
        """The task file's JSON text (compact: the scheduler writes one per task attempt)."""
        # Not dataclasses.asdict: it deep-copies every value, and the values here are
        # already JSON types apart from the artifact slots.
        data = dict(self.__dict__)
        for key in ("input_artifacts", "output_artifacts"):
            data[key] = {name: [asdict(slot) for slot in slots] for name, slots in data[key].items()}
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskFile:
        """Reads a parsed task file; unknown keys are ignored."""
        if data.get("version", TASK_FILE_VERSION) != TASK_FILE_VERSION:
            raise ValueError(f"unsupported task file version {data.get('version')!r}")
        known = {f for f in cls.__dataclass_fields__}
        kwargs = {k: v for k, v in data.items() if k in known}
        for key in ("input_artifacts", "output_artifacts"):
            kwargs[key] = {
                name: [ArtifactSlot(**slot) for slot in slots] for name, slots in (data.get(key) or {}).items()
            }
        return cls(**kwargs)

    @classmethod
    def load(cls, path: str) -> TaskFile:
        """Reads the task file at ``path``."""
        with open(path, encoding="utf-8") as f:
            return cls.from_dict(json.load(f))

    def save(self, path: str) -> None:
        """Writes the task file to ``path`` atomically."""
        write_json_atomic(path, self.to_json())


def write_json_atomic(path: str, text: str) -> None:
    """Writes ``text`` to ``path`` through a temporary file and a rename."""
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
