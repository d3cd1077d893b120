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
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    cast,
    false,
    func,
    select,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, column_property, mapped_column

ID_LENGTH = 64
NAMESPACE_LENGTH = 63
STATE_LENGTH = 32
TASK_ID_LENGTH = 1024
KIND_LENGTH = 32
NAME_LENGTH = 255


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
        # Lists filtered on one of these and sorted by creation (0002).
        Index("ix_api_runs_state_created_at", "state", "created_at", "run_id"),
        Index("ix_api_runs_experiment_created_at", "experiment_id", "created_at", "run_id"),
        Index("ix_api_runs_storage_state_created_at", "storage_state", "created_at", "run_id"),
        Index("ix_api_runs_recurring_run_id_state", "recurring_run_id", "state"),
    )

    run_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    display_name: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, default="")
    namespace: Mapped[str] = mapped_column(String(NAMESPACE_LENGTH), default="")
    experiment_id: Mapped[str] = mapped_column(String(ID_LENGTH), default="")
    pipeline_name: Mapped[str] = mapped_column(Text)
    #: The bare IR (PipelineSpec JSON).
    pipeline_spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: The IR as stored text, for listings: not parsed per row, and identical for every
    #: run of one pipeline, so its protobuf form is converted once and reused.
    pipeline_spec_text: Mapped[str] = column_property(cast(pipeline_spec, Text), deferred=True)
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
    #: "AVAILABLE" or "ARCHIVED".
    storage_state: Mapped[str] = mapped_column(String(STATE_LENGTH), default="AVAILABLE", server_default="AVAILABLE")
    #: The recurring run that created this run ("" when none).
    recurring_run_id: Mapped[str] = mapped_column(String(ID_LENGTH), default="", server_default="")
    #: The stored pipeline version the run was created from ("" for an inline spec).
    pipeline_id: Mapped[str] = mapped_column(String(ID_LENGTH), default="", server_default="")
    pipeline_version_id: Mapped[str] = mapped_column(String(ID_LENGTH), default="", server_default="")
    service_account: Mapped[str] = mapped_column(Text, default="", server_default="")
    #: Status reports applied so far (0003); each one's task writes are stamped with it.
    status_version: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    #: The status version of the last report that deleted task rows (0 when none did): a
    #: watcher that saw an older version cannot tell which of its tasks went, so it is
    #: sent every task.
    tasks_removed_version: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class RunTaskRow(Base):
    """One task of a run, as the scheduler last reported it."""

    __tablename__ = "api_run_tasks"
    __table_args__ = (
        # GetRun for a watcher: the run's tasks written after a status version (0003).
        Index("ix_api_run_tasks_run_id_version", "run_id", "version"),
        # A watcher's KFP-shaped details list each changed task's children (0003).
        Index("ix_api_run_tasks_run_id_parent_task_id", "run_id", "parent_task_id"),
    )

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
    #: True when the task reused a cached execution's outputs (0004).
    cached: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: The run's ``status_version`` when this row was last written (0003). A row is also
    #: written when a child task is added under it: its KFP-shaped detail lists children.
    version: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class PipelineRow(Base):
    """A stored pipeline: a name that groups versions."""

    __tablename__ = "api_pipelines"
    __table_args__ = (
        UniqueConstraint("namespace", "name", name="uq_api_pipelines_namespace_name"),
        Index("ix_api_pipelines_namespace_created_at", "namespace", "created_at", "pipeline_id"),
    )

    pipeline_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    display_name: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, default="")
    namespace: Mapped[str] = mapped_column(String(NAMESPACE_LENGTH), default="")
    tags: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PipelineVersionRow(Base):
    """One version of a stored pipeline: its checked spec."""

    __tablename__ = "api_pipeline_versions"
    __table_args__ = (
        UniqueConstraint("pipeline_id", "name", name="uq_api_pipeline_versions_pipeline_id_name"),
        Index("ix_api_pipeline_versions_pipeline_created_at", "pipeline_id", "created_at", "pipeline_version_id"),
    )

    pipeline_version_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    pipeline_id: Mapped[str] = mapped_column(
        String(ID_LENGTH),
        ForeignKey("api_pipelines.pipeline_id", name="fk_api_pipeline_versions_pipeline_id", ondelete="CASCADE"),
    )
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    display_name: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    package_url: Mapped[str] = mapped_column(Text, default="")
    code_source_url: Mapped[str] = mapped_column(Text, default="")
    #: The bare IR.
    pipeline_spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: The kfp-kubernetes platform spec, ``{}`` when none.
    platform_spec: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ExperimentRow(Base):
    """An experiment: a named group of runs in a namespace."""

    __tablename__ = "api_experiments"
    __table_args__ = (
        UniqueConstraint("namespace", "display_name", name="uq_api_experiments_namespace_display_name"),
        Index("ix_api_experiments_namespace_created_at", "namespace", "created_at", "experiment_id"),
    )

    experiment_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    description: Mapped[str] = mapped_column(Text, default="")
    namespace: Mapped[str] = mapped_column(String(NAMESPACE_LENGTH), default="")
    storage_state: Mapped[str] = mapped_column(String(STATE_LENGTH), default="AVAILABLE")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: When the experiment's newest run was created: computed from ``api_runs`` (an
    #: index-only lookup on ix_api_runs_experiment_created_at) instead of written on
    #: every CreateRun, so concurrent runs never queue on the experiment's row.
    last_run_created_at: Mapped[datetime | None] = column_property(
        select(func.max(RunRow.created_at))
        .where(RunRow.experiment_id == experiment_id)
        .correlate_except(RunRow)
        .scalar_subquery()
    )


class RecurringRunRow(Base):
    """A recurring run: what to run, its trigger, and when it fires next."""

    __tablename__ = "api_recurring_runs"
    __table_args__ = (
        Index("ix_api_recurring_runs_due", "enabled", "next_fire_at"),
        Index("ix_api_recurring_runs_namespace_created_at", "namespace", "created_at", "recurring_run_id"),
        Index("ix_api_recurring_runs_experiment_id", "experiment_id"),
    )

    recurring_run_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    display_name: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, default="")
    namespace: Mapped[str] = mapped_column(String(NAMESPACE_LENGTH), default="")
    experiment_id: Mapped[str] = mapped_column(String(ID_LENGTH), default="")
    pipeline_id: Mapped[str] = mapped_column(String(ID_LENGTH), default="")
    pipeline_version_id: Mapped[str] = mapped_column(String(ID_LENGTH), default="")
    #: The bare IR, copied at creation (a deleted version does not stop the schedule).
    pipeline_spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    platform_spec: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: Root parameters as given (validated; defaults are filled per run).
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    pipeline_root: Mapped[str] = mapped_column(Text, default="")
    service_account: Mapped[str] = mapped_column(Text, default="")
    max_concurrency: Mapped[int] = mapped_column(Integer, default=1)
    #: "cron" or "periodic".
    trigger_kind: Mapped[str] = mapped_column(String(16))
    cron: Mapped[str] = mapped_column(Text, default="")
    interval_second: Mapped[int] = mapped_column(BigInteger, default=0)
    start_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    end_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    no_catchup: Mapped[bool] = mapped_column(Boolean, default=False)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    #: The next fire time; NULL when disabled or past end_time.
    next_fire_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: Runs created so far (the ``[[Index]]`` macro).
    fire_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
