"""The API service's domain objects: plain dataclasses, free of protobuf and SQLAlchemy.

The servicer converts protobuf messages to and from these; the service layer and the
repository speak only these.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class RunState(str, enum.Enum):
    """Lifecycle state of a run or a task; names and order match KFP's ``RuntimeState``."""

    RUNTIME_STATE_UNSPECIFIED = "RUNTIME_STATE_UNSPECIFIED"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    SKIPPED = "SKIPPED"
    FAILED = "FAILED"
    CANCELING = "CANCELING"
    CANCELED = "CANCELED"
    PAUSED = "PAUSED"

    @property
    def is_final(self) -> bool:
        """True for states a run never leaves."""
        return self in FINAL_STATES


FINAL_STATES = frozenset({RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELED, RunState.SKIPPED})


@dataclass
class ArtifactRef:
    """One artifact a task or run produced."""

    uri: str
    metadata: dict[str, Any] = field(default_factory=dict)
    artifact_id: int = 0
    schema_title: str = ""
    size_bytes: int = 0
    sha256: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "uri": self.uri,
            "metadata": self.metadata,
            "artifact_id": self.artifact_id,
            "schema_title": self.schema_title,
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ArtifactRef:
        return cls(
            uri=str(data.get("uri", "")),
            metadata=dict(data.get("metadata") or {}),
            artifact_id=int(data.get("artifact_id") or 0),
            schema_title=str(data.get("schema_title", "")),
            size_bytes=int(data.get("size_bytes") or 0),
            sha256=str(data.get("sha256", "")),
        )


@dataclass
class Outputs:
    """Output parameters (typed JSON values) and artifacts by name."""

    parameters: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, list[ArtifactRef]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The JSON form stored in the database."""
        return {
            "parameters": self.parameters,
            "artifacts": {name: [a.to_json() for a in refs] for name, refs in self.artifacts.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Outputs:
        data = data or {}
        return cls(
            parameters=dict(data.get("parameters") or {}),
            artifacts={
                name: [ArtifactRef.from_json(a) for a in refs]
                for name, refs in (data.get("artifacts") or {}).items()
            },
        )


@dataclass
class TaskDetail:
    """The state of one task of a run, as the scheduler last reported it."""

    task_id: str
    display_name: str = ""
    state: RunState = RunState.PENDING
    create_time: datetime | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    execution_id: int = 0
    outputs: Outputs = field(default_factory=Outputs)
    error: str = ""
    log_tail: str = ""
    log_uri: str = ""
    parent_task_id: str = ""
    kind: str = ""
    #: True when the task reused a cached execution's outputs (no process ran).
    cached: bool = False


@dataclass
class NewRun:
    """What a caller asks for when creating a run (before validation).

    The spec comes inline (``pipeline_spec``) or from a stored pipeline version
    (``pipeline_id`` and optionally ``pipeline_version_id``; empty = latest).
    """

    pipeline_spec: dict[str, Any]
    display_name: str = ""
    description: str = ""
    namespace: str = ""
    experiment_id: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    pipeline_root: str = ""
    pipeline_id: str = ""
    pipeline_version_id: str = ""
    service_account: str = ""
    #: A digest of the inline spec's content, when the caller has one: a spec already
    #: checked under it is not parsed and checked again (:mod:`stepwell_api.specs`).
    spec_digest: bytes = b""
    #: Produces the inline spec when ``pipeline_spec`` is left empty (the servicer
    #: converts the request's Struct only when the digest is not known).
    spec_loader: Callable[[], dict[str, Any]] | None = None

    @property
    def has_inline_spec(self) -> bool:
        return bool(self.pipeline_spec) or self.spec_loader is not None

    def load_spec(self) -> dict[str, Any]:
        """The inline spec (converted now if it was left to :attr:`spec_loader`)."""
        if not self.pipeline_spec and self.spec_loader is not None:
            return self.spec_loader()
        return self.pipeline_spec


@dataclass
class Run:
    """A run as the API service records it."""

    run_id: str
    display_name: str
    pipeline_name: str
    #: The IR; ``{"pipeline_spec": ..., "platform_spec": ...}`` when it has a platform spec.
    pipeline_spec: dict[str, Any]
    #: Root parameters as resolved at creation (validated, defaults filled).
    parameters: dict[str, Any]
    state: RunState
    created_at: datetime
    description: str = ""
    namespace: str = ""
    experiment_id: str = ""
    pipeline_root: str = ""
    error: str = ""
    scheduled_at: datetime | None = None
    finished_at: datetime | None = None
    outputs: Outputs = field(default_factory=Outputs)
    task_details: list[TaskDetail] = field(default_factory=list)
    #: When the scheduler acknowledged StartRun (None while not yet handed over).
    handed_at: datetime | None = None
    storage_state: str = "AVAILABLE"
    #: ``pipeline_spec`` as JSON text when the service has it (a listing leaves
    #: ``pipeline_spec`` empty then); converted to protobuf once per distinct text.
    pipeline_spec_json: str = ""
    recurring_run_id: str = ""
    pipeline_id: str = ""
    pipeline_version_id: str = ""
    service_account: str = ""
    #: Status reports applied to the run so far.
    status_version: int = 0
    #: True when ``task_details`` holds only the tasks changed after the status version a
    #: watcher asked with (:class:`RunQuery`); the watcher keeps the others.
    partial_tasks: bool = False
    #: When ``partial_tasks``: the child task ids of each listed task (from every task
    #: of the run, not only the listed ones). Otherwise None: ``task_details`` is every
    #: task and the children follow from it.
    child_task_ids: dict[str, list[str]] | None = None


@dataclass(frozen=True)
class RunQuery:
    """What GetRun leaves out of a run, for watchers that poll it."""

    #: When > 0: only the tasks changed after this status version (unless tasks were
    #: deleted since; then every task).
    tasks_after_version: int = 0
    #: Leave the pipeline spec out.
    omit_pipeline_spec: bool = False


@dataclass
class StatusReport:
    """A scheduler's report of a run's state.

    ``task_details`` is every task, replacing what the API service had; or, when
    ``partial``, only the tasks that changed since the last report acknowledged (the
    other task rows are kept)."""

    run_id: str
    state: RunState
    error: str = ""
    task_details: list[TaskDetail] = field(default_factory=list)
    outputs: Outputs = field(default_factory=Outputs)
    update_time: datetime | None = None
    partial: bool = False


@dataclass
class Handover:
    """What the scheduler's StartRun receives for one run."""

    run_id: str
    pipeline_spec: dict[str, Any]
    parameters: dict[str, Any]
    pipeline_root: str
    namespace: str
    #: ``pipeline_spec`` as JSON text when the caller has it (converted once per spec).
    pipeline_spec_json: str = ""


@dataclass
class RunPage:
    """One page of a run listing."""

    runs: list[Run]
    next_page_token: str
    total_size: int
