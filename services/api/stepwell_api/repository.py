"""Reading and writing the API service's tables. Takes a session; never commits.

The service layer opens the transaction (:meth:`stepwell.server.Database.session`) and
passes the session in; everything here runs inside it.
"""

from __future__ import annotations

import json
import typing
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    Connection,
    Insert,
    String,
    Table,
    Text,
    and_,
    bindparam,
    cast,
    func,
    insert,
    inspect,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session

from stepwell_api.domain import Outputs, Run, RunState, TaskDetail
from stepwell_api.models import ExperimentRow, RunRow, RunTaskRow

ARCHIVED = "ARCHIVED"  # resources.ARCHIVED (resources imports this module)

#: What :meth:`RunRepository.insert_in_experiment` writes; ``experiment_id`` and
#: ``namespace`` come from the experiment's row, every other column starts NULL.
CREATE_COLUMNS = (
    "run_id",
    "display_name",
    "description",
    "pipeline_name",
    "pipeline_spec",
    "platform_spec",
    "parameters",
    "pipeline_root",
    "state",
    "error",
    "outputs",
    "created_at",
    "scheduled_at",
    "handover_attempts",
    "storage_state",
    "recurring_run_id",
    "pipeline_id",
    "pipeline_version_id",
    "service_account",
)
#: JSON columns among them; their values are passed as JSON text.
JSON_COLUMNS = frozenset({"pipeline_spec", "platform_spec", "parameters", "outputs"})
_insert_in_experiment: dict[str, Insert] = {}


def _insert_in_experiment_statement(dialect: str) -> Insert:
    """``INSERT INTO api_runs (...) SELECT <values>, e.experiment_id, e.namespace FROM
    api_experiments e WHERE <the experiment may take runs> RETURNING namespace``, built
    once per dialect so SQLAlchemy compiles it once."""
    statement = _insert_in_experiment.get(dialect)
    if statement is not None:
        return statement
    runs = typing.cast(Table, RunRow.__table__)
    experiments = ExperimentRow.__table__.alias("e")
    values: list[Any] = []
    for key in CREATE_COLUMNS:
        if key in JSON_COLUMNS:
            param = bindparam(f"p_{key}", type_=Text)
            # Postgres types a bare literal in a SELECT list as text, which a json
            # column refuses; SQLite keeps JSON as text anyway (and CAST AS JSON there
            # would mean NUMERIC).
            values.append(cast(param, JSON) if dialect == "postgresql" else param)
        else:
            values.append(bindparam(f"p_{key}", type_=runs.c[key].type))
    requested = bindparam("p_requested_namespace", type_=String)
    source = select(*values, experiments.c.experiment_id, experiments.c.namespace).where(
        experiments.c.experiment_id == bindparam("p_experiment_id", type_=String),
        experiments.c.storage_state != ARCHIVED,
        or_(requested == "", experiments.c.namespace == requested),
    )
    statement = (
        insert(runs)
        .from_select([*CREATE_COLUMNS, "experiment_id", "namespace"], source, include_defaults=False)
        .returning(runs.c.namespace)
    )
    _insert_in_experiment[dialect] = statement
    return statement


def as_utc(value: datetime | None) -> datetime | None:
    """``value`` as an aware UTC datetime (SQLite hands back naive ones, stored as UTC)."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def _state(name: str) -> RunState:
    try:
        return RunState(name)
    except ValueError:
        return RunState.RUNTIME_STATE_UNSPECIFIED


class RunRepository:
    """Runs and their tasks in ``api_runs`` / ``api_run_tasks``."""

    def __init__(self, session: Session) -> None:
        self.session = session

    # -- runs ---------------------------------------------------------------------------

    def add(self, row: RunRow) -> None:
        """Inserts a new run row (at once, so a duplicate id fails here). A plain INSERT,
        not the ORM's unit of work: CreateRun is the hottest write path."""
        values = {column.key: getattr(row, column.key) for column in RunRow.__table__.columns}
        self.session.execute(insert(RunRow), [values])

    @staticmethod
    def insert_in_experiment(
        connection: Connection | Session, values: dict[str, Any], experiment_id: str, requested_namespace: str
    ) -> str | None:
        """Inserts a new run into ``experiment_id`` in one statement, provided the
        experiment exists, is not archived and (when ``requested_namespace`` is set) is
        in that namespace; the run takes the experiment's namespace, which is returned.
        None when nothing was inserted (the caller finds out why).

        ``values`` holds :data:`CREATE_COLUMNS`, the :data:`JSON_COLUMNS` as JSON text.
        CreateRun's hottest path: on an autocommit connection this is the whole write,
        one round trip.
        """
        statement = _insert_in_experiment_statement(connection.get_bind().dialect.name
                                                    if isinstance(connection, Session) else connection.dialect.name)
        params = {f"p_{key}": values[key] for key in CREATE_COLUMNS}
        params["p_experiment_id"] = experiment_id
        params["p_requested_namespace"] = requested_namespace
        row = connection.execute(statement, params).first()
        return None if row is None else str(row[0])

    def get_row(self, run_id: str) -> RunRow | None:
        """The run's row, or None."""
        return self.session.get(RunRow, run_id)

    def lock_row(self, run_id: str) -> RunRow | None:
        """The run's row, locked against concurrent writers until the transaction ends.

        Postgres takes a row lock (``SELECT ... FOR UPDATE``). SQLite has no row locks:
        a no-op UPDATE first takes the database's write lock, so the row read next is
        current and no other writer can change it before this transaction commits.
        """
        if self.session.get_bind().dialect.name == "sqlite":
            self.session.execute(
                update(RunRow).where(RunRow.run_id == run_id).values(run_id=RunRow.run_id),
                execution_options={"synchronize_session": False},
            )
        return self.session.scalars(
            select(RunRow).where(RunRow.run_id == run_id).with_for_update()
        ).one_or_none()

    def count(self, namespace: str | None) -> int:
        """Number of runs, in ``namespace`` when given."""
        query = select(func.count()).select_from(RunRow)
        if namespace is not None:
            query = query.where(RunRow.namespace == namespace)
        return int(self.session.scalar(query) or 0)

    def list_rows(
        self,
        namespace: str | None,
        limit: int,
        after: tuple[datetime, str] | None = None,
    ) -> list[RunRow]:
        """Up to ``limit`` runs, newest first, strictly after the ``(created_at, run_id)`` cursor."""
        query = select(RunRow)
        if namespace is not None:
            query = query.where(RunRow.namespace == namespace)
        if after is not None:
            created_at, run_id = after
            query = query.where(
                or_(
                    RunRow.created_at < created_at,
                    and_(RunRow.created_at == created_at, RunRow.run_id < run_id),
                )
            )
        query = query.order_by(RunRow.created_at.desc(), RunRow.run_id.desc()).limit(limit)
        return list(self.session.scalars(query))

    def awaiting_handover(self, limit: int) -> list[RunRow]:
        """PENDING runs the scheduler has not acknowledged yet, oldest first."""
        query = (
            select(RunRow)
            .where(RunRow.state == RunState.PENDING.value, RunRow.handed_at.is_(None))
            .order_by(RunRow.created_at, RunRow.run_id)
            .limit(limit)
        )
        return list(self.session.scalars(query))

    def awaiting_cancel(self, limit: int) -> list[str]:
        """Ids of handed-over runs whose termination the scheduler has not acknowledged."""
        query = (
            select(RunRow.run_id)
            .where(
                RunRow.cancel_requested_at.is_not(None),
                RunRow.cancel_acked_at.is_(None),
                RunRow.handed_at.is_not(None),
            )
            .order_by(RunRow.cancel_requested_at)
            .limit(limit)
        )
        return list(self.session.scalars(query))

    # -- tasks --------------------------------------------------------------------------

    def tasks_of(self, run_ids: Sequence[str]) -> dict[str, list[RunTaskRow]]:
        """The task rows of every run in ``run_ids``, in one query, in report order."""
        grouped: dict[str, list[RunTaskRow]] = defaultdict(list)
        if not run_ids:
            return grouped
        query = (
            select(RunTaskRow)
            .where(RunTaskRow.run_id.in_(list(run_ids)))
            .order_by(RunTaskRow.run_id, RunTaskRow.position)
        )
        for row in self.session.scalars(query):
            grouped[row.run_id].append(row)
        return grouped

    def replace_tasks(self, run_id: str, tasks: Sequence[TaskDetail]) -> None:
        """Makes the run's task rows equal ``tasks``: changed rows are updated, new ones
        added, missing ones deleted; unchanged rows are not written."""
        existing = {row.task_id: row for row in self.tasks_of([run_id]).get(run_id, [])}
        seen: set[str] = set()
        for position, task in enumerate(tasks):
            if task.task_id in seen:
                continue
            seen.add(task.task_id)
            values = _task_values(task, position)
            row = existing.get(task.task_id)
            if row is None:
                self.session.add(RunTaskRow(run_id=run_id, task_id=task.task_id, **values))
                continue
            for key, value in values.items():
                current = getattr(row, key)
                if isinstance(current, datetime):
                    current = as_utc(current)
                if current != value:
                    setattr(row, key, value)
        for task_id, row in existing.items():
            if task_id not in seen:
                self.session.delete(row)
        self.session.flush()

    # -- conversions --------------------------------------------------------------------

    def to_domain(self, row: RunRow, tasks: Sequence[RunTaskRow] = ()) -> Run:
        """The domain run for ``row`` and its task rows."""
        spec_json = ""
        if "pipeline_spec" in inspect(row).unloaded:  # a listing: the text form was loaded
            spec_json, spec = row.pipeline_spec_text, {}
            if row.platform_spec:
                spec = {"pipeline_spec": json.loads(spec_json), "platform_spec": row.platform_spec}
                spec_json = ""
        elif row.platform_spec:
            spec = {"pipeline_spec": row.pipeline_spec, "platform_spec": row.platform_spec}
        else:
            spec = row.pipeline_spec
        created_at = as_utc(row.created_at)
        assert created_at is not None
        return Run(
            run_id=row.run_id,
            display_name=row.display_name,
            description=row.description,
            namespace=row.namespace,
            experiment_id=row.experiment_id,
            pipeline_name=row.pipeline_name,
            pipeline_spec=spec,
            parameters=dict(row.parameters or {}),
            pipeline_root=row.pipeline_root,
            state=_state(row.state),
            error=row.error,
            created_at=created_at,
            scheduled_at=as_utc(row.scheduled_at),
            finished_at=as_utc(row.finished_at),
            outputs=Outputs.from_json(row.outputs),
            task_details=[task_to_domain(t) for t in tasks],
            handed_at=as_utc(row.handed_at),
            storage_state=row.storage_state or "AVAILABLE",
            pipeline_spec_json=spec_json,
            recurring_run_id=row.recurring_run_id or "",
            pipeline_id=row.pipeline_id or "",
            pipeline_version_id=row.pipeline_version_id or "",
            service_account=row.service_account or "",
        )

    def load(self, row: RunRow) -> Run:
        """The domain run for ``row`` with its tasks."""
        return self.to_domain(row, self.tasks_of([row.run_id]).get(row.run_id, []))

    def ping(self) -> None:
        """Fails when the database cannot be reached."""
        self.session.execute(text("SELECT 1"))


def _task_values(task: TaskDetail, position: int) -> dict[str, Any]:
    return {
        "position": position,
        "display_name": task.display_name,
        "state": task.state.value,
        "create_time": task.create_time,
        "start_time": task.start_time,
        "end_time": task.end_time,
        "execution_id": task.execution_id,
        "outputs": task.outputs.to_json(),
        "error": task.error,
        "log_tail": task.log_tail,
        "log_uri": task.log_uri,
        "parent_task_id": task.parent_task_id,
        "kind": task.kind,
    }


def task_to_domain(row: RunTaskRow) -> TaskDetail:
    """The domain task detail for a task row."""
    return TaskDetail(
        task_id=row.task_id,
        display_name=row.display_name,
        state=_state(row.state),
        create_time=as_utc(row.create_time),
        start_time=as_utc(row.start_time),
        end_time=as_utc(row.end_time),
        execution_id=int(row.execution_id or 0),
        outputs=Outputs.from_json(row.outputs),
        error=row.error,
        log_tail=row.log_tail,
        log_uri=row.log_uri,
        parent_task_id=row.parent_task_id,
        kind=row.kind,
    )

