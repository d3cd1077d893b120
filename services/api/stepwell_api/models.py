"""SQLAlchemy models of the API service's tables.

Every table name starts with ``api_``: the scheduler and metadata services may keep
their own tables in the same database, and this service never touches theirs. The
schema is created by the Alembic migrations in ``migrations/``, which must match these
models (a test compares them).

Tasks live in their own table, ``api_run_tasks``, rather than as one JSON document on
the run: a run may have thousands of tasks (a ``ParallelFor`` fan-out), each report
then updates only the rows that changed; task rows can be queried on their own (by
state, by execution id) for the REST surface and the UI; and a large task list does
not bloat every read of the run row. Listings load the tasks of a whole page in one
batched query.
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
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ID_LENGTH = 64
NAMESPACE_LENGTH = 63
STATE_LENGTH = 32
TASK_ID_LENGTH = 1024
KIND_LENGTH = 32


def utcnow() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    """Declarative base of the API service's models (``Base.metadata`` feeds Alembic)."""

    type_annotation_map = {dict[str, Any]: JSON}


class RunRow(Base):
    """One run: its definition (spec, parameters) and its latest reported state."""

    __tablename__ = "api_runs"
    __table_args__ = (
        Index("ix_api_runs_namespace_created_at", "namespace", "created_at", "run_id"),
        Index("ix_api_runs_created_at", "created_at", "run_id"),
        Index("ix_api_runs_state", "state"),
        Index("ix_api_runs_experiment_id", "experiment_id"),
    )

    run_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    display_name: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, default="")
    namespace: Mapped[str] = mapped_column(String(NAMESPACE_LENGTH), default="")
    experiment_id: Mapped[str] = mapped_column(String(ID_LENGTH), default="")
    pipeline_name: Mapped[str] = mapped_column(Text)
    #: The bare IR (PipelineSpec JSON).
    pipeline_spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: The kfp-kubernetes platform spec, ``{}`` when none.
    platform_spec: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: Root parameters, validated and with defaults filled.
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON)
    pipeline_root: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(String(STATE_LENGTH))
    error: Mapped[str] = mapped_column(Text, default="")
    outputs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    scheduled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: When the scheduler acknowledged StartRun; NULL while the run waits for handover.
    handed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: Failed handover attempts so far (for diagnostics).
    handover_attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: When TerminateRun was asked for; NULL when never.
    cancel_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: When the scheduler acknowledged CancelRun.
    cancel_acked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: ``update_time`` of the newest status report applied (older reports are stale).
    status_updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RunTaskRow(Base):
    """One task of a run, as the scheduler last reported it."""

    __tablename__ = "api_run_tasks"

    run_id: Mapped[str] = mapped_column(
        String(ID_LENGTH),
        ForeignKey("api_runs.run_id", name="fk_api_run_tasks_run_id", ondelete="CASCADE"),
        primary_key=True,
    )
    #: Qualified name: enclosing DAG tasks joined with "/", "[i]" after a loop iteration.
    task_id: Mapped[str] = mapped_column(String(TASK_ID_LENGTH), primary_key=True)
    #: Order in the scheduler's report, so details come back in the order sent.
    position: Mapped[int] = mapped_column(Integer, default=0)
    display_name: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(String(STATE_LENGTH))
    create_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    start_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    end_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    execution_id: Mapped[int] = mapped_column(BigInteger, default=0)
    outputs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str] = mapped_column(Text, default="")
    log_tail: Mapped[str] = mapped_column(Text, default="")
    log_uri: Mapped[str] = mapped_column(Text, default="")
    parent_task_id: Mapped[str] = mapped_column(String(TASK_ID_LENGTH), default="")
    kind: Mapped[str] = mapped_column(String(KIND_LENGTH), default="")
