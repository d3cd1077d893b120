"""SQLAlchemy models of the metadata service's tables.

Every table name starts with ``md_``: the API and scheduler services may keep their own
tables in the same database, and this service never touches theirs. The schema is
created by the Alembic migrations in ``migrations/``, which must match these models
(a test compares them).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: Ids are 64-bit on Postgres; on SQLite an ``INTEGER PRIMARY KEY`` (the rowid) is 64-bit
#: already and is the only type that autoincrements.
Id = BigInteger().with_variant(Integer(), "sqlite")

TYPE_LENGTH = 255
NAME_LENGTH = 1024
URI_LENGTH = 2048
STATE_LENGTH = 16


def utcnow() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    """Declarative base of the metadata service's models (``Base.metadata`` feeds Alembic)."""

    type_annotation_map = {dict[str, Any]: JSON}


class ContextRow(Base):
    """A context: a named group of executions and artifacts (a pipeline, a run)."""

    __tablename__ = "md_contexts"
    __table_args__ = (
        UniqueConstraint("type", "name", name="uq_md_contexts_type_name"),
        Index("ix_md_contexts_parent_id", "parent_id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    type: Mapped[str] = mapped_column(String(TYPE_LENGTH))
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    parent_id: Mapped[int | None] = mapped_column(
        Id, ForeignKey("md_contexts.id", name="fk_md_contexts_parent_id")
    )
    custom_properties: Mapped[dict[str, Any]] = mapped_column(JSON)
    create_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ExecutionRow(Base):
    """An execution of a task, a DAG or an importer."""

    __tablename__ = "md_executions"
    __table_args__ = (Index("ix_md_executions_type_name", "type", "name"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    type: Mapped[str] = mapped_column(String(TYPE_LENGTH))
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    state: Mapped[str] = mapped_column(String(STATE_LENGTH))
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON)
    outputs: Mapped[dict[str, Any]] = mapped_column(JSON)
    custom_properties: Mapped[dict[str, Any]] = mapped_column(JSON)
    create_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    update_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ArtifactRow(Base):
    """An artifact: where it is stored, what type it is and its metadata."""

    __tablename__ = "md_artifacts"
    __table_args__ = (Index("ix_md_artifacts_uri", "uri"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    type: Mapped[str] = mapped_column(String(TYPE_LENGTH))
    uri: Mapped[str] = mapped_column(String(URI_LENGTH))
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    # "metadata" is reserved on declarative classes, hence the attribute name.
    artifact_metadata: Mapped[dict[str, Any]] = mapped_column("metadata", JSON)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    create_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class EventRow(Base):
    """An INPUT or OUTPUT link between an execution and an artifact."""

    __tablename__ = "md_events"
    __table_args__ = (
        UniqueConstraint(
            "execution_id", "artifact_id", "type", "path", "index", name="uq_md_events_link"
        ),
        Index("ix_md_events_artifact_id", "artifact_id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    execution_id: Mapped[int] = mapped_column(
        Id, ForeignKey("md_executions.id", name="fk_md_events_execution_id")
    )
    artifact_id: Mapped[int] = mapped_column(
        Id, ForeignKey("md_artifacts.id", name="fk_md_events_artifact_id")
    )
    type: Mapped[str] = mapped_column(String(STATE_LENGTH))
    path: Mapped[str] = mapped_column(String(NAME_LENGTH))
    index: Mapped[int] = mapped_column(Integer)
    create_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AssociationRow(Base):
    """Links a context to an execution (ML Metadata's "association")."""

    __tablename__ = "md_associations"
    __table_args__ = (Index("ix_md_associations_execution_id", "execution_id"),)

    context_id: Mapped[int] = mapped_column(
        Id, ForeignKey("md_contexts.id", name="fk_md_associations_context_id"), primary_key=True
    )
    execution_id: Mapped[int] = mapped_column(
        Id, ForeignKey("md_executions.id", name="fk_md_associations_execution_id"), primary_key=True
    )


class AttributionRow(Base):
    """Links a context to an artifact (ML Metadata's "attribution")."""

    __tablename__ = "md_attributions"
    __table_args__ = (Index("ix_md_attributions_artifact_id", "artifact_id"),)

    context_id: Mapped[int] = mapped_column(
        Id, ForeignKey("md_contexts.id", name="fk_md_attributions_context_id"), primary_key=True
    )
    artifact_id: Mapped[int] = mapped_column(
        Id, ForeignKey("md_artifacts.id", name="fk_md_attributions_artifact_id"), primary_key=True
    )


class CacheEntryRow(Base):
    """One entry of the task cache index: a fingerprint and the outputs a hit reuses."""

    __tablename__ = "md_cache_entries"
    __table_args__ = (Index("ix_md_cache_entries_lookup", "pipeline_name", "namespace", "fingerprint"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    pipeline_name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    namespace: Mapped[str] = mapped_column(String(TYPE_LENGTH))
    fingerprint: Mapped[str] = mapped_column(String(64))
    run_id: Mapped[str] = mapped_column(String(TYPE_LENGTH))
    task_name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    execution_id: Mapped[int] = mapped_column(BigInteger)
    outputs: Mapped[dict[str, Any]] = mapped_column(JSON)
    create_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
