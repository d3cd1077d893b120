"""Database access for the metadata service.

:class:`MetadataRepository` wraps a :class:`~sqlalchemy.orm.Session` owned by the caller
and never commits; the service layer decides where transactions begin and end. Every
list is read with a fixed number of statements, however many rows it returns.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from typing import Any

from sqlalchemy import Select, insert, select, tuple_, update
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


class MetadataRepository:
    """Reads and writes the ``md_*`` tables within the caller's session."""

    def __init__(self, session: Session) -> None:
        self.session = session

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
        return _missing(self.session, ContextRow.id, ids)

    # -- executions -------------------------------------------------------------------

    def add_executions(self, executions: Sequence[dict[str, Any]]) -> list[ExecutionRow]:
        """Inserts executions (dicts of :class:`ExecutionRow` fields) and flushes to obtain ids.

        One flush for all of them lets SQLAlchemy insert the batch in one statement.
        """
        now = utcnow()
        rows = [ExecutionRow(create_time=now, update_time=now, **fields) for fields in executions]
        self.session.add_all(rows)
        self.session.flush()
        return rows

    def get_execution(self, execution_id: int, *, for_update: bool = False) -> ExecutionRow | None:
        """The execution with this id; ``for_update`` locks its row until the transaction ends."""
        stmt = select(ExecutionRow).where(ExecutionRow.id == execution_id)
        if for_update:
            stmt = stmt.with_for_update()
        return self.session.scalars(stmt).one_or_none()

    def lock_executions(self, ids: Collection[int]) -> dict[int, ExecutionRow]:
        """The executions with these ids (those that exist), locked until the transaction ends.

        Rows are locked in id order, so two batches sharing executions cannot deadlock.
        """
        if not ids:
            return {}
        if self.session.get_bind().dialect.name == "sqlite":
            # SQLite has no row locks, and pysqlite begins a transaction only at the first
            # write: a no-op write takes the database's write lock now, so what is read next
            # cannot change before this transaction ends.
            self.session.execute(
                update(ExecutionRow)
                .where(ExecutionRow.id.in_(set(ids)))
                .values(state=ExecutionRow.state)
                .execution_options(synchronize_session=False)
            )
        rows = self.session.scalars(
            select(ExecutionRow)
            .where(ExecutionRow.id.in_(set(ids)))
            .order_by(ExecutionRow.id)
            .with_for_update()
        )
        return {row.id: row for row in rows}

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

    def associate(self, pairs: Iterable[tuple[int, int]]) -> None:
        """Links (context id, execution id) pairs; links that exist already are kept."""
        self._link_pairs(AssociationRow, "execution_id", pairs)

    # -- artifacts --------------------------------------------------------------------

    def add_artifacts(self, artifacts: Sequence[dict[str, Any]]) -> list[ArtifactRow]:
        """Inserts artifacts (dicts of :class:`ArtifactRow` fields) and flushes to obtain ids."""
        now = utcnow()
        rows = [ArtifactRow(create_time=now, **fields) for fields in artifacts]
        self.session.add_all(rows)
        self.session.flush()
        return rows

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

    def attribute(self, pairs: Iterable[tuple[int, int]]) -> None:
        """Links (context id, artifact id) pairs; links that exist already are kept."""
        self._link_pairs(AttributionRow, "artifact_id", pairs)

    # -- events -----------------------------------------------------------------------

    def add_events(self, events: Sequence[tuple[int, int, str, str, int]]) -> int:
        """Inserts (execution_id, artifact_id, type, path, index) events not recorded yet.

        Events recorded already are skipped, so recording the same events twice (a retry)
        is harmless. Returns how many were inserted.
        """
        wanted = list(dict.fromkeys(events))
        if not wanted:
            return 0
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
            self.session.execute(insert(EventRow), new)
        return len(new)

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

    def _link_pairs(self, model: Any, column: str, pairs: Iterable[tuple[int, int]]) -> None:
        wanted = list(dict.fromkeys(pairs))
        if not wanted:
            return
        other = getattr(model, column)
        existing = set(
            self.session.execute(
                select(model.context_id, other).where(tuple_(model.context_id, other).in_(wanted))
            )
        )
        self.session.add_all(
            model(context_id=c, **{column: o}) for c, o in wanted if (c, o) not in existing
        )
        self.session.flush()


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
