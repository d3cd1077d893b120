"""Plain data the client hands to its callers: runs, tasks and artifacts.

Protobuf stays inside the client; these dataclasses are what notebooks, the CLI and
tests work with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

T = TypeVar("T")

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
    #: True when the task reused a cached execution's outputs (no process ran).
    cached: bool = False


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
    storage_state: str = ""
    pipeline_id: str = ""
    pipeline_version_id: str = ""
    recurring_run_id: str = ""

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


@dataclass
class Pipeline:
    """A stored pipeline (its versions hold the specs)."""

    pipeline_id: str
    name: str
    display_name: str
    description: str = ""
    namespace: str = ""
    created_at: datetime | None = None
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class PipelineVersion:
    """One version of a stored pipeline."""

    pipeline_version_id: str
    pipeline_id: str
    name: str
    display_name: str
    description: str = ""
    created_at: datetime | None = None
    pipeline_spec: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    code_source_url: str = ""


@dataclass
class Experiment:
    """A named group of runs."""

    experiment_id: str
    display_name: str
    description: str = ""
    namespace: str = ""
    storage_state: str = "AVAILABLE"
    created_at: datetime | None = None
    last_run_created_at: datetime | None = None


@dataclass
class RecurringRun:
    """Runs created on a schedule: ``cron`` (six fields, seconds first) or every
    ``interval_second`` seconds."""

    recurring_run_id: str
    display_name: str
    status: str
    description: str = ""
    namespace: str = ""
    experiment_id: str = ""
    cron: str = ""
    interval_second: int = 0
    start_time: datetime | None = None
    end_time: datetime | None = None
    max_concurrency: int = 1
    no_catchup: bool = False
    parameters: dict[str, Any] = field(default_factory=dict)
    pipeline_id: str = ""
    pipeline_version_id: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None
    next_fire_at: datetime | None = None


@dataclass
class Page(Generic[T]):
    """One page of a listing: ``items``, the token of the next page ("" on the last) and
    the number of matching items."""

    items: list[T]
    next_page_token: str = ""
    total_size: int = 0

    # kfp.Client's list replies name the list after the resource; these aliases let
    # code written for it keep working.
    @property
    def pipelines(self) -> list[T]:
        return self.items

    @property
    def pipeline_versions(self) -> list[T]:
        return self.items

    @property
    def experiments(self) -> list[T]:
        return self.items

    @property
    def recurring_runs(self) -> list[T]:
        return self.items
