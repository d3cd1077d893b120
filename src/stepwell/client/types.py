"""Plain data the client hands to its callers: runs, tasks and artifacts.

Protobuf stays inside the client; these dataclasses are what notebooks, the CLI and
tests work with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

#: Run and task states after which nothing more happens.
FINAL_STATES = frozenset({"SUCCEEDED", "FAILED", "CANCELED", "SKIPPED"})


@dataclass
class ArtifactRef:
    """One artifact a task or pipeline produced."""

    uri: str
    metadata: dict[str, Any] = field(default_factory=dict)
    artifact_id: int = 0
    schema_title: str = ""
    size_bytes: int = 0
    sha256: str = ""


@dataclass
class Outputs:
    """Output parameters (typed JSON values) and artifacts, by name."""

    parameters: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, list[ArtifactRef]] = field(default_factory=dict)


@dataclass
class TaskDetail:
    """The state of one task of a run; ``task_id`` is its qualified name (``outer/inner``)."""

    task_id: str
    display_name: str
    state: str
    kind: str = ""
    parent_task_id: str = ""
    create_time: datetime | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    execution_id: int = 0
    outputs: Outputs = field(default_factory=Outputs)
    error: str = ""
    log_tail: str = ""
    log_uri: str = ""


@dataclass
class Run:
    """A run as the API service records it."""

    run_id: str
    display_name: str
    state: str
    pipeline_name: str = ""
    namespace: str = ""
    description: str = ""
    experiment_id: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    pipeline_root: str = ""
    error: str = ""
    created_at: datetime | None = None
    scheduled_at: datetime | None = None
    finished_at: datetime | None = None
    outputs: Outputs = field(default_factory=Outputs)
    tasks: list[TaskDetail] = field(default_factory=list)

    @property
    def done(self) -> bool:
        """True once the run reached a final state."""
        return self.state in FINAL_STATES

    def task(self, task_id: str) -> TaskDetail:
        """The task with qualified name ``task_id``; KeyError names the known ones."""
        for task in self.tasks:
            if task.task_id == task_id:
                return task
        raise KeyError(f"run {self.run_id} has no task {task_id!r}; it has {[t.task_id for t in self.tasks]}")


@dataclass
class RunPage:
    """One page of :meth:`Client.list_runs`."""

    runs: list[Run]
    next_page_token: str = ""
    total_size: int = 0
