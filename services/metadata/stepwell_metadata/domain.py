"""The metadata service's domain objects: plain dataclasses, free of protobuf and SQLAlchemy.

They follow ML Metadata as KFP uses it: contexts group executions and artifacts (a
pipeline, a run), executions are task attempts, artifacts are stored outputs, and
events link an execution to the artifacts it consumed (INPUT) and produced (OUTPUT).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

JSONObject = dict[str, Any]


class ExecutionState(str, enum.Enum):
    """Execution states as ML Metadata names them (KFP records "not triggered" as CANCELED)."""

    NEW = "NEW"
    RUNNING = "RUNNING"
    COMPLETE = "COMPLETE"
    FAILED = "FAILED"
    CACHED = "CACHED"
    CANCELED = "CANCELED"


class EventType(str, enum.Enum):
    """Which way an artifact flows: into an execution (INPUT) or out of it (OUTPUT)."""

    INPUT = "INPUT"
    OUTPUT = "OUTPUT"


@dataclass(frozen=True)
class Context:
    """A named group of executions and artifacts, e.g. ``system.PipelineRun`` / run id."""

    id: int
    type: str
    name: str
    parent_id: int | None
    custom_properties: JSONObject
    create_time: datetime


@dataclass(frozen=True)
class Execution:
    """One execution of a task (or a DAG, or an importer)."""

    id: int
    type: str
    name: str
    state: ExecutionState
    context_ids: list[int]
    inputs: JSONObject
    outputs: JSONObject
    custom_properties: JSONObject
    create_time: datetime
    update_time: datetime


@dataclass(frozen=True)
class Artifact:
    """A stored artifact: where it lives (``uri``), what it is (``type``) and its metadata."""

    id: int
    type: str
    uri: str
    name: str
    metadata: JSONObject
    size_bytes: int
    sha256: str
    context_ids: list[int]
    create_time: datetime


@dataclass(frozen=True)
class Event:
    """A link between an execution and an artifact, bound to an input or output name."""

    execution_id: int
    artifact_id: int
    type: EventType
    path: str
    index: int
    create_time: datetime | None = None


@dataclass(frozen=True)
class NewContext:
    """What :meth:`MetadataService.get_or_create_context` needs to create a context."""

    type: str
    name: str
    parent_id: int | None = None
    custom_properties: JSONObject = field(default_factory=dict)


@dataclass(frozen=True)
class NewExecution:
    """What :meth:`MetadataService.create_execution` needs; ``state`` defaults to RUNNING.

    ``input_events`` are INPUT events to existing artifacts, recorded with the execution;
    their ``execution_id`` is left 0 (the new execution's id is filled in).
    """

    type: str
    name: str = ""
    state: ExecutionState | None = None
    context_ids: list[int] = field(default_factory=list)
    inputs: JSONObject = field(default_factory=dict)
    outputs: JSONObject = field(default_factory=dict)
    custom_properties: JSONObject = field(default_factory=dict)
    input_events: list[Event] = field(default_factory=list)


@dataclass(frozen=True)
class ExecutionUpdate:
    """Changes to an execution; ``None`` leaves a field as it is.

    ``outputs`` replaces the outputs; ``custom_properties`` is merged key by key.
    """

    id: int
    state: ExecutionState | None = None
    outputs: JSONObject | None = None
    custom_properties: JSONObject | None = None


@dataclass(frozen=True)
class NewArtifact:
    """An artifact to record. ``id`` set (non-zero) names an existing artifact to link instead."""

    type: str = ""
    uri: str = ""
    name: str = ""
    metadata: JSONObject = field(default_factory=dict)
    size_bytes: int = 0
    sha256: str = ""
    context_ids: list[int] = field(default_factory=list)
    id: int = 0


@dataclass(frozen=True)
class ArtifactBinding:
    """An artifact and the name (and position) of the execution it is bound to.

    An empty ``path`` means the artifact's ``name``.
    """

    artifact: NewArtifact
    path: str = ""
    index: int = 0


@dataclass(frozen=True)
class FinishedExecution:
    """The end of an execution for :meth:`MetadataService.finish_executions`.

    ``outputs`` are recorded with OUTPUT events (attributed to ``context_ids``) unless
    the execution has OUTPUT events already; then ``update`` is applied (its state is
    required).
    """

    update: ExecutionUpdate
    outputs: list[ArtifactBinding] = field(default_factory=list)
    context_ids: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class ArtifactLineage:
    """An artifact with the execution that produced it and those that consumed it."""

    artifact: Artifact
    producer: Execution | None
    consumers: list[Execution]
    events: list[Event]
