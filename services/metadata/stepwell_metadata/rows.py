"""Database rows as the metadata service's domain objects."""

from __future__ import annotations

from datetime import datetime, timezone

from stepwell_metadata.domain import (
    Artifact,
    Context,
    Event,
    EventType,
    Execution,
    ExecutionState,
)
from stepwell_metadata.models import (
    ArtifactRow,
    ContextRow,
    EventRow,
    ExecutionRow,
)


def as_utc(value: datetime) -> datetime:
    """Aware UTC; SQLite hands back naive datetimes for the UTC values we stored."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def context_of(row: ContextRow) -> Context:
    return Context(
        id=row.id,
        type=row.type,
        name=row.name,
        parent_id=row.parent_id,
        custom_properties=dict(row.custom_properties or {}),
        create_time=as_utc(row.create_time),
    )


def execution_of(row: ExecutionRow, context_ids: list[int]) -> Execution:
    return Execution(
        id=row.id,
        type=row.type,
        name=row.name,
        state=ExecutionState(row.state),
        context_ids=list(context_ids),
        inputs=dict(row.inputs or {}),
        outputs=dict(row.outputs or {}),
        custom_properties=dict(row.custom_properties or {}),
        create_time=as_utc(row.create_time),
        update_time=as_utc(row.update_time),
    )


def artifact_of(row: ArtifactRow, context_ids: list[int]) -> Artifact:
    return Artifact(
        id=row.id,
        type=row.type,
        uri=row.uri,
        name=row.name,
        metadata=dict(row.artifact_metadata or {}),
        size_bytes=row.size_bytes,
        sha256=row.sha256,
        context_ids=list(context_ids),
        create_time=as_utc(row.create_time),
    )


def event_of(row: EventRow) -> Event:
    return Event(
        execution_id=row.execution_id,
        artifact_id=row.artifact_id,
        type=EventType(row.type),
        path=row.path,
        index=row.index,
        create_time=as_utc(row.create_time),
    )
