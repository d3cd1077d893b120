"""Database access for the metadata service.

:class:`MetadataRepository` wraps a :class:`~sqlalchemy.orm.Session` owned by the caller
and never commits; the service layer decides where transactions begin and end. Every
list is read with a fixed number of statements, however many rows it returns.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Select,
    Table,
    Update,
    bindparam,
    exists,
    insert,
    literal_column,
    select,
    tuple_,
    update,
)
from sqlalchemy.orm import Session

from stepwell_metadata.models import (
    ArtifactRow,
    AssociationRow,
    AttributionRow,
    ContextRow,
    EventRow,
    ExecutionRow,
    utcnow,
)

# Core handles on the tables, for writes whose rows need no ORM objects.
_EXECUTIONS = cast(Table, ExecutionRow.__table__)
_ARTIFACTS = cast(Table, ArtifactRow.__table__)
_EVENTS = cast(Table, EventRow.__table__)


@dataclass(frozen=True)
class LockedExecution:
    """What finishing an execution needs to know of it, read under its lock."""

    custom_properties: dict[str, Any]
    has_outputs: bool


class MetadataRepository:
    """Reads and writes the ``md_*`` tables within the caller's session.

    ``known_contexts`` are context ids verified to exist by an earlier, committed
    transaction: contexts are never deleted, so they are not looked up again. The ids
    this transaction verifies are collected in :attr:`verified_contexts`, for the caller
    to add to its known ones once the transaction has committed.
    """

    def __init__(self, session: Session, known_contexts: frozenset[int] = frozenset()) -> None:
        self.session = session
        self.known_contexts = known_contexts
        self.verified_contexts: set[int] = set()

    # -- contexts ---------------------------------------------------------------------

    def find_context(self, type_: str, name: str) -> ContextRow | None:
        """The context with this type and name, if any."""
        return self.session.scalars(
            select(ContextRow).where(ContextRow.type == type_, ContextRow.name == name)
        ).one_or_none()

    def add_context(
        self, type_: str, name: str, parent_id: int | None, custom_properties: dict[str, Any]
    ) -> ContextRow:
        """Inserts a context and flushes, so a duplicate raises ``IntegrityError`` here."""
        row = ContextRow(
            type=type_,
            name=name,
            parent_id=parent_id,
            custom_properties=custom_properties,
            create_time=utcnow(),
        )
        self.session.add(row)
        self.session.flush()
        return row

    def missing_context_ids(self, ids: Iterable[int]) -> list[int]:
        """Those of ``ids`` that name no context, sorted."""
        wanted = set(ids) - self.known_contexts
        missing = _missing(self.session, ContextRow.id, wanted)
        self.verified_contexts |= wanted.difference(missing)
        return missing

    # -- executions -------------------------------------------------------------------

    def insert_executions(self, executions: Sequence[dict[str, Any]], now: datetime) -> list[int]:
        """Inserts executions (dicts of :class:`ExecutionRow` fields); their ids, in order.

        A Core insert: the caller builds its replies from what it inserted, so ORM
        objects would only cost identity-map bookkeeping.
        """
        table = _EXECUTIONS
        result = self.session.execute(
            insert(table).returning(table.c.id, sort_by_parameter_order=True),
            [{**fields, "create_time": now, "update_time": now} for fields in executions],
        )
        return [row[0] for row in result]

    def get_execution(self, execution_id: int, *, for_update: bool = False) -> ExecutionRow | None:
        """The execution with this id; ``for_update`` locks its row until the transaction ends."""
        stmt = select(ExecutionRow).where(ExecutionRow.id == execution_id)
        if for_update:
            stmt = stmt.with_for_update()
        return self.session.scalars(stmt).one_or_none()

    def lock_executions(self, ids: Collection[int]) -> dict[int, LockedExecution]:
        """The executions with these ids (those that exist), locked until the transaction ends,
        with their custom properties and whether they have OUTPUT events.

        Rows are locked in id order, so two batches sharing executions cannot deadlock.
        Whether there are OUTPUT events is read after the lock is held, so a finish that
        waited for another sees the events that one recorded.
        """
        if not ids:
            return {}
        wanted = set(ids)
        if self.session.get_bind().dialect.name == "sqlite":
            # SQLite has no row locks, and pysqlite begins a transaction only at the first
            # write: a no-op write takes the database's write lock, and what it returns is
            # read under that lock, so it cannot change before this transaction ends.
            rows = self.session.execute(_SQLITE_LOCK, {"ids": list(wanted)})
            return {
                id_: LockedExecution(dict(props or {}), bool(done)) for id_, props, done in rows
            }
        locked = list(self.session.execute(_LOCK, {"ids": sorted(wanted)}))
        # A statement of its own: Postgres reads a statement's subqueries as of its start,
        # before the lock wait, so they could miss events the lock's holder committed.
        done = set(self.session.scalars(_WITH_OUTPUTS, {"ids": sorted(wanted)}))
        return {id_: LockedExecution(dict(props or {}), id_ in done) for id_, props in locked}

    def update_executions(self, changes: Sequence[dict[str, Any]]) -> None:
        """Sets columns of executions: each dict holds ``id`` and the columns to set.

        Changes setting the same columns share one statement.
        """
        by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
        for change in changes:
            columns = tuple(sorted(k for k in change if k != "id"))
            by_columns[columns].append({f"v_{k}": v for k, v in change.items()})
        for columns, params in by_columns.items():
            self.session.execute(_update_statement(columns), params)

    def missing_execution_ids(self, ids: Iterable[int]) -> list[int]:
        """Those of ``ids`` that name no execution, sorted."""
        return _missing(self.session, ExecutionRow.id, ids)

    def list_executions(
        self, *, context_id: int | None = None, ids: Collection[int] = ()
    ) -> list[tuple[ExecutionRow, list[int]]]:
        """Executions matching every given filter, by id, each with its context ids."""
        id_query = select(ExecutionRow.id)
        if ids:
            id_query = id_query.where(ExecutionRow.id.in_(set(ids)))
        if context_id is not None:
            id_query = id_query.where(
                ExecutionRow.id.in_(
                    select(AssociationRow.execution_id).where(
                        AssociationRow.context_id == context_id
                    )
                )
            )
        return self._executions_with_contexts(id_query)

    def executions_by_ids(self, ids: Collection[int]) -> list[tuple[ExecutionRow, list[int]]]:
        """The executions with these ids (those that exist), by id, with their context ids."""
        if not ids:
            return []
        return self._executions_with_contexts(
            select(ExecutionRow.id).where(ExecutionRow.id.in_(set(ids)))
        )

    def _executions_with_contexts(
        self, id_query: Select[Any]
    ) -> list[tuple[ExecutionRow, list[int]]]:
        rows = self.session.scalars(
            select(ExecutionRow).where(ExecutionRow.id.in_(id_query)).order_by(ExecutionRow.id)
        ).all()
        if not rows:
            return []
        contexts = _group(
            self.session.execute(
                select(AssociationRow.execution_id, AssociationRow.context_id)
                .where(AssociationRow.execution_id.in_(id_query))
                .order_by(AssociationRow.context_id)
            )
        )
        return [(row, contexts.get(row.id, [])) for row in rows]

    def associate(self, pairs: Iterable[tuple[int, int]], *, new: bool = False) -> None:
        """Links (context id, execution id) pairs; links that exist already are kept.

        ``new`` says the executions were inserted by this transaction, so they have no
        links to look for.
        """
        self._link_pairs(AssociationRow, "execution_id", pairs, unlinked=None if new else ())

    # -- artifacts --------------------------------------------------------------------

    def insert_artifacts(self, artifacts: Sequence[dict[str, Any]], now: datetime) -> list[int]:
        """Inserts artifacts (dicts of ``md_artifacts`` columns); their ids, in order."""
        if not artifacts:
            return []
        table = _ARTIFACTS
        result = self.session.execute(
            insert(table).returning(table.c.id, sort_by_parameter_order=True),
            [{**fields, "create_time": now} for fields in artifacts],
        )
        return [row[0] for row in result]

    def missing_artifact_ids(self, ids: Iterable[int]) -> list[int]:
        """Those of ``ids`` that name no artifact, sorted."""
        return _missing(self.session, ArtifactRow.id, ids)

    def list_artifacts(
        self, *, context_id: int | None = None, ids: Collection[int] = (), uri: str | None = None
    ) -> list[tuple[ArtifactRow, list[int]]]:
        """Artifacts matching every given filter, by id, each with its context ids."""
        id_query = select(ArtifactRow.id)
        if ids:
            id_query = id_query.where(ArtifactRow.id.in_(set(ids)))
        if uri is not None:
            id_query = id_query.where(ArtifactRow.uri == uri)
        if context_id is not None:
            id_query = id_query.where(
                ArtifactRow.id.in_(
                    select(AttributionRow.artifact_id).where(
                        AttributionRow.context_id == context_id
                    )
                )
            )
        rows = self.session.scalars(
            select(ArtifactRow).where(ArtifactRow.id.in_(id_query)).order_by(ArtifactRow.id)
        ).all()
        if not rows:
            return []
        contexts = _group(
            self.session.execute(
                select(AttributionRow.artifact_id, AttributionRow.context_id)
                .where(AttributionRow.artifact_id.in_(id_query))
                .order_by(AttributionRow.context_id)
            )
        )
        return [(row, contexts.get(row.id, [])) for row in rows]

    def attribute(self, pairs: Iterable[tuple[int, int]], *, new_ids: Collection[int] = ()) -> None:
        """Links (context id, artifact id) pairs; links that exist already are kept.

        Artifacts in ``new_ids`` were inserted by this transaction: no links of theirs
        are looked for.
        """
        self._link_pairs(AttributionRow, "artifact_id", pairs, unlinked=new_ids)

    # -- events -----------------------------------------------------------------------

    def add_events(
        self,
        events: Sequence[tuple[int, int, str, str, int]],
        *,
        new_artifacts: Collection[int] = (),
        new_executions: bool = False,
    ) -> int:
        """Inserts (execution_id, artifact_id, type, path, index) events not recorded yet.

        Events recorded already are skipped, so recording the same events twice (a retry)
        is harmless. Events of artifacts in ``new_artifacts``, or of executions inserted
        by this transaction (``new_executions``), cannot exist yet and are not looked
        for. Returns how many were inserted.
        """
        wanted = list(dict.fromkeys(events))
        if not wanted:
            return 0
        to_check = [] if new_executions else [e for e in wanted if e[1] not in new_artifacts]
        existing = self._existing_events(to_check) if to_check else set()
        now = utcnow()
        new = [
            {
                "execution_id": e[0],
                "artifact_id": e[1],
                "type": e[2],
                "path": e[3],
                "index": e[4],
                "create_time": now,
            }
            for e in wanted
            if e not in existing
        ]
        if new:
            self.session.execute(insert(_EVENTS), new)
        return len(new)

    def _existing_events(
        self, wanted: Sequence[tuple[int, int, str, str, int]]
    ) -> set[tuple[Any, ...]]:
        key = tuple_(
            EventRow.execution_id,
            EventRow.artifact_id,
            EventRow.type,
            EventRow.path,
            EventRow.index,
        )
        existing = {
            tuple(row)
            for row in self.session.execute(
                select(
                    EventRow.execution_id,
                    EventRow.artifact_id,
                    EventRow.type,
                    EventRow.path,
                    EventRow.index,
                ).where(EventRow.execution_id.in_({e[0] for e in wanted}), key.in_(wanted))
            )
        }
        return existing

    def list_events(
        self,
        *,
        execution_ids: Collection[int] = (),
        artifact_ids: Collection[int] = (),
        type_: str | None = None,
    ) -> list[EventRow]:
        """Events matching every given filter, oldest first."""
        stmt = select(EventRow)
        if execution_ids:
            stmt = stmt.where(EventRow.execution_id.in_(set(execution_ids)))
        if artifact_ids:
            stmt = stmt.where(EventRow.artifact_id.in_(set(artifact_ids)))
        if type_ is not None:
            stmt = stmt.where(EventRow.type == type_)
        return list(self.session.scalars(stmt.order_by(EventRow.id)))

    # -- helpers ----------------------------------------------------------------------

    def _link_pairs(
        self,
        model: Any,
        column: str,
        pairs: Iterable[tuple[int, int]],
        unlinked: Collection[int] | None,
    ) -> None:
        """Inserts the (context id, other id) pairs not linked yet. Others in ``unlinked``
        (all of them when it is ``None``) are known to have no links."""
        wanted = list(dict.fromkeys(pairs))
        if not wanted:
            return
        other = getattr(model, column)
        to_check = [] if unlinked is None else [p for p in wanted if p[1] not in unlinked]
        existing: set[tuple[int, int]] = set()
        if to_check:
            existing = {
                (c, o)
                for c, o in self.session.execute(
                    select(model.context_id, other).where(
                        tuple_(model.context_id, other).in_(to_check)
                    )
                )
            }
        new = [{"context_id": c, column: o} for c, o in wanted if (c, o) not in existing]
        if new:
            self.session.execute(insert(cast(Table, model.__table__)), new)


# SQLite's lock for finishing executions (see lock_executions), and what it reads under it.
# Spelled out: SQLAlchemy renders RETURNING columns unqualified, and a bare "id" in the
# subquery would be the event's.
_SQLITE_LOCK = (
    update(_EXECUTIONS)
    .where(_EXECUTIONS.c.id.in_(bindparam("ids", expanding=True)))
    .values(state=_EXECUTIONS.c.state)
    .returning(
        _EXECUTIONS.c.id,
        _EXECUTIONS.c.custom_properties,
        exists().where(
            EventRow.execution_id == literal_column(f"{_EXECUTIONS.name}.id"),
            EventRow.type == "OUTPUT",
        ),
    )
)


# Elsewhere, rows are locked in id order (see lock_executions).
_LOCK = (
    select(_EXECUTIONS.c.id, _EXECUTIONS.c.custom_properties)
    .where(_EXECUTIONS.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(_EXECUTIONS.c.id)
    .with_for_update()
)
_WITH_OUTPUTS = (
    select(EventRow.execution_id)
    .where(EventRow.execution_id.in_(bindparam("ids", expanding=True)), EventRow.type == "OUTPUT")
    .distinct()
)


@functools.cache
def _update_statement(columns: tuple[str, ...]) -> Update:
    """Sets ``columns`` of the execution with id ``v_id``, from parameters ``v_<column>``.

    Built once per set of columns: building and hashing a statement costs about what
    running it does.
    """
    return (
        update(_EXECUTIONS)
        .where(_EXECUTIONS.c.id == bindparam("v_id"))
        .values({c: bindparam(f"v_{c}") for c in columns})
    )


def _missing(session: Session, column: Any, ids: Iterable[int]) -> list[int]:
    wanted = set(ids)
    if not wanted:
        return []
    found = set(session.scalars(select(column).where(column.in_(wanted))))
    return sorted(wanted - found)


def _group(pairs: Iterable[tuple[int, int]]) -> dict[int, list[int]]:
    grouped: dict[int, list[int]] = defaultdict(list)
    for key, value in pairs:
        grouped[key].append(value)
    return dict(grouped)
