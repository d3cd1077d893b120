"""The scheduler's tables (prefix ``sched_``): runs and their tasks.

All engine state lives here; the engine's in-memory view is only a cache. JSON columns
hold IR fragments, resolved inputs and collected outputs in the IR's JSON form.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: Run and task states (names of ``stepwell.v1.RuntimeState``).
PENDING = "PENDING"
RUNNING = "RUNNING"
SUCCEEDED = "SUCCEEDED"
SKIPPED = "SKIPPED"
FAILED = "FAILED"
CANCELING = "CANCELING"
CANCELED = "CANCELED"
FINAL_STATES = frozenset({SUCCEEDED, SKIPPED, FAILED, CANCELED})


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON}


class RunRow(Base):
    """A run the scheduler drives."""

    __tablename__ = "sched_runs"

    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    pipeline_name: Mapped[str] = mapped_column(String(256))
    namespace: Mapped[str] = mapped_column(String(128), default="")
    #: The whole PipelineSpec (can be hundreds of KiB): deferred, so loading a run does not
    #: decode it; the engine decodes it once per run into a cached plan.
    spec: Mapped[dict[str, Any]] = mapped_column(JSON, deferred=True)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON)
    pipeline_root: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default=PENDING)
    error: Mapped[str] = mapped_column(Text, default="")
    outputs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    pipeline_context_id: Mapped[int] = mapped_column(BigInteger, default=0)
    run_context_id: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    #: {"disable_cache": bool, "timeout_seconds": float, "task_timeout_seconds": float,
    #:  "platform_spec": {...}} (see ``RunOptions`` in scheduler.proto)
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: When the run times out (None: never).
    deadline_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    #: The scheduler process driving the run ("" : none) and until when its lease holds;
    #: another scheduler takes the run over once the lease has expired (see ``engine.leases``).
    lease_owner: Mapped[str] = mapped_column(String(128), default="")
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    #: CancelRun arrived (at any scheduler); the owner applies it.
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (Index("ix_sched_runs_state", "state"), Index("ix_sched_runs_lease_owner", "lease_owner"))


class TaskRow(Base):
    """One task of a run: a container task or a (nested) DAG task."""

    __tablename__ = "sched_tasks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("sched_runs.run_id", ondelete="CASCADE"))
    qualified_name: Mapped[str] = mapped_column(String(512))
    name: Mapped[str] = mapped_column(String(256))
    display_name: Mapped[str] = mapped_column(String(256), default="")
    parent: Mapped[str] = mapped_column(String(512), default="")
    kind: Mapped[str] = mapped_column(String(16))  # "container" | "dag" | "importer" | "loop"
    component: Mapped[str] = mapped_column(String(256))
    state: Mapped[str] = mapped_column(String(16), default=PENDING)
    #: {"parameters": {...}, "artifacts": {name: [{uri, artifact_id, schema_title, metadata}]}}
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: {"parameters": {...}, "artifacts": {name: [{uri, artifact_id, schema_title, metadata, size, sha256}]}}
    outputs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    execution_id: Mapped[int] = mapped_column(BigInteger, default=0)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    pid: Mapped[int] = mapped_column(Integer, default=0)
    task_dir: Mapped[str] = mapped_column(Text, default="")
    ready_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    error: Mapped[str] = mapped_column(Text, default="")
    log_tail: Mapped[str] = mapped_column(Text, default="")
    log_uri: Mapped[str] = mapped_column(Text, default="")
    #: The cache fingerprint (kfp-facts §4.4), "" when caching does not apply.
    fingerprint: Mapped[str] = mapped_column(String(64), default="")
    #: True when the outputs were reused from a cached execution (no process ran).
    cached: Mapped[bool] = mapped_column(Boolean, default=False)
    #: A PENDING task is not dispatched before this time (retry backoff).
    not_before: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    #: When the running attempt times out (None: never).
    deadline_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    #: The scheduler that claimed the newest attempt (its lease owner id).
    worker: Mapped[str] = mapped_column(String(128), default="")
    #: Queued again after a scheduler died while the task was claimed: the metadata
    #: execution of its next attempt may exist already (look it up before creating one).
    lookup_execution: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Attempts of this row that failed (not those lost when a scheduler died): what a
    #: ``retryPolicy``'s ``maxRetryCount`` is counted against.
    failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: Ended, but the end of its execution is not recorded in the metadata service yet:
    #: set in the transaction that ends the row when recording it waits until after the
    #: starts that end made possible; cleared once recorded (an outbox; see
    #: ``engine.outbox``).
    unrecorded: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    __table_args__ = (
        UniqueConstraint("run_id", "qualified_name", name="uq_sched_tasks_run_task"),
        Index("ix_sched_tasks_state", "state"),
        Index("ix_sched_tasks_run_id", "run_id"),
        # Partial: only the few rows waiting to be recorded are indexed.
        Index(
            "ix_sched_tasks_unrecorded",
            "run_id",
            postgresql_where=text("unrecorded"),
            sqlite_where=text("unrecorded"),
        ),
    )
