"""Reading and writing the API service's tables. Takes a session; never commits.

The service layer opens the transaction (:meth:`stepwell.server.Database.session`) and
passes the session in; everything here runs inside it.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Sequence
from datetime import datetime
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
)
from sqlalchemy.orm import Session, defer, undefer

from stepwell_api.domain import Outputs, Run, RunQuery, RunState, TaskDetail
from stepwell_api.models import ExperimentRow, RunRow
from stepwell_api.run_tasks import RunTasksMixin, as_utc

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



def _state(name: str) -> RunState:
    try:
        return RunState(name)
    except ValueError:
        return RunState.RUNTIME_STATE_UNSPECIFIED


class RunRepository(RunTasksMixin):
    """Runs and their tasks in ``api_runs`` / ``api_run_tasks``."""

    def __init__(self, session: Session) -> None:
        self.session = session

    # -- runs ---------------------------------------------------------------------------

    def add(self, row: RunRow) -> None:
        """Inserts a new run row (at once, so a duplicate id fails here). A plain INSERT,
        not the ORM's unit of work: CreateRun is the hottest write path."""
        values = {
            column.key: getattr(row, column.key)
            for column in RunRow.__table__.columns
            # An unset column takes its default (the status versions start at 0).
            if getattr(row, column.key) is not None or column.default is None
        }
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
        self._lock_sqlite(run_id)
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

    # -- conversions --------------------------------------------------------------------

    def to_domain(self, row: RunRow, tasks: Sequence[TaskDetail] = (), omit_spec: bool = False) -> Run:
        """The domain run for ``row`` and its tasks.

        A row loaded with ``pipeline_spec`` deferred and ``pipeline_spec_text`` loaded
        (listings, GetRun) gives the spec as JSON text, converted to protobuf once per
        distinct text; with both deferred (``omit_spec``) the run has no spec."""
        spec_json = ""
        spec: dict[str, Any] = {}
        if omit_spec:
            pass
        elif "pipeline_spec" in inspect(row).unloaded:
            spec_json = row.pipeline_spec_text
            if row.platform_spec:  # spliced as text: the IR is not parsed for it
                spec_json = (
                    f'{{"pipeline_spec": {spec_json}, "platform_spec": {json.dumps(row.platform_spec, sort_keys=True)}}}'
                )
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
            task_details=list(tasks),
            handed_at=as_utc(row.handed_at),
            storage_state=row.storage_state or "AVAILABLE",
            pipeline_spec_json=spec_json,
            recurring_run_id=row.recurring_run_id or "",
            pipeline_id=row.pipeline_id or "",
            pipeline_version_id=row.pipeline_version_id or "",
            service_account=row.service_account or "",
            status_version=int(row.status_version or 0),
        )

    def get_run(self, run_id: str, query: RunQuery = RunQuery()) -> Run | None:
        """The domain run ``run_id`` with the tasks ``query`` asks for; None when unknown.

        The run's row is read before its tasks: a report committed in between only makes
        the tasks newer than the ``status_version`` returned, so a watcher asking again
        after that version is sent those tasks again, never misses any."""
        options = [defer(RunRow.pipeline_spec)]
        if not query.omit_pipeline_spec:
            options.append(undefer(RunRow.pipeline_spec_text))
        row = self.session.scalars(select(RunRow).where(RunRow.run_id == run_id).options(*options)).one_or_none()
        if row is None:
            return None
        after, current = query.tasks_after_version, row.status_version or 0
        # A version this run never reached comes from some other history (a restored
        # database): the caller's tasks cannot be trusted, so it gets them all.
        if after <= 0 or (row.tasks_removed_version or 0) > after or after > current:
            return self.to_domain(row, self.tasks_of([run_id]).get(run_id, []), omit_spec=query.omit_pipeline_spec)
        tasks = self.tasks_after(run_id, after) if after < current else []
        run = self.to_domain(row, tasks, omit_spec=query.omit_pipeline_spec)
        run.partial_tasks = True
        run.child_task_ids = self.children_of(run_id, [t.task_id for t in tasks]) if tasks else {}
        return run

    def ping(self) -> None:
        """Fails when the database cannot be reached."""
        self.session.execute(text("SELECT 1"))
