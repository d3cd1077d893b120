"""The metadata service layer: validation, transactions and the domain objects.

Each public method of :class:`MetadataService` is one transaction. Input is validated
before anything is written; a bad request raises :class:`~stepwell.errors.InvalidArgument`
(naming the field) or :class:`~stepwell.errors.NotFound` and leaves the database as it was.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from typing import TypeVar

from sqlalchemy.exc import IntegrityError

from stepwell.errors import InvalidArgument, NotFound
from stepwell.server import Database
from stepwell_metadata.domain import (
    Artifact,
    ArtifactBinding,
    ArtifactLineage,
    Context,
    Event,
    EventType,
    Execution,
    ExecutionState,
    ExecutionUpdate,
    NewContext,
    NewExecution,
)
from stepwell_metadata.models import (
    NAME_LENGTH,
    TYPE_LENGTH,
    URI_LENGTH,
    ArtifactRow,
    ContextRow,
    EventRow,
    ExecutionRow,
    utcnow,
)
from stepwell_metadata.repository import MetadataRepository

log = logging.getLogger(__name__)

_SHA256 = re.compile(r"[0-9a-f]{64}")
_WRITE_ATTEMPTS = 5
T = TypeVar("T")


class MetadataService:
    """Records and answers questions about contexts, executions, artifacts and lineage."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def _write(self, work: Callable[[MetadataRepository], T]) -> T:
        """Runs ``work`` in a transaction, again when it collides with a concurrent writer.

        A collision is a unique constraint rejecting a row another transaction has just
        committed (the same context, event or link); the retry reads that row instead.
        """
        for attempt in range(1, _WRITE_ATTEMPTS + 1):
            try:
                with self.db.session() as session:
                    return work(MetadataRepository(session))
            except IntegrityError:
                if attempt == _WRITE_ATTEMPTS:
                    raise
                log.debug("write collided with a concurrent one; retrying (attempt %d)", attempt)
        raise AssertionError("unreachable")

    # -- contexts ---------------------------------------------------------------------

    def get_or_create_context(self, new: NewContext) -> Context:
        """The context with ``new.type`` and ``new.name``, created from ``new`` if absent.

        Safe under concurrency: when two callers race to create the same context, the
        unique constraint rejects one insert and that caller reads the winner's row.
        """
        _require(new.type, "type", TYPE_LENGTH)
        _require(new.name, "name", NAME_LENGTH)
        _ids_positive([new.parent_id] if new.parent_id is not None else [], "parent_id")

        def work(repo: MetadataRepository) -> Context:
            row = repo.find_context(new.type, new.name)
            if row is None:
                if new.parent_id is not None and repo.missing_context_ids([new.parent_id]):
                    raise NotFound(f"parent_id: no context with id {new.parent_id}")
                row = repo.add_context(
                    new.type, new.name, new.parent_id, dict(new.custom_properties)
                )
            return _context(row)

        return self._write(work)

    def get_context(self, type_: str, name: str) -> Context:
        """The context with this type and name; :class:`NotFound` if there is none."""
        _require(type_, "type", TYPE_LENGTH)
        _require(name, "name", NAME_LENGTH)
        with self.db.session() as session:
            row = MetadataRepository(session).find_context(type_, name)
            if row is None:
                raise NotFound(f"no context of type {type_!r} named {name!r}")
            return _context(row)

    # -- executions -------------------------------------------------------------------

    def create_execution(self, new: NewExecution) -> Execution:
        """Records an execution (RUNNING unless ``new.state`` says otherwise) in its contexts."""
        _require(new.type, "execution.type", TYPE_LENGTH)
        _limit(new.name, "execution.name", NAME_LENGTH)
        context_ids = _ids_positive(new.context_ids, "execution.context_ids")
        with self.db.session() as session:
            repo = MetadataRepository(session)
            _exist(repo.missing_context_ids(context_ids), "execution.context_ids", "context")
            row = repo.add_execution(
                new.type,
                new.name,
                (new.state or ExecutionState.RUNNING).value,
                dict(new.inputs),
                dict(new.outputs),
                dict(new.custom_properties),
            )
            repo.associate(context_ids, row.id)
            return _execution(row, sorted(context_ids))

    def update_execution(self, update: ExecutionUpdate) -> Execution:
        """Sets the state and outputs of an execution and merges its custom properties."""
        _ids_positive([update.id], "id")
        with self.db.session() as session:
            repo = MetadataRepository(session)
            row = repo.get_execution(update.id, for_update=True)
            if row is None:
                raise NotFound(f"id: no execution with id {update.id}")
            if update.state is not None:
                row.state = update.state.value
            if update.outputs is not None:
                row.outputs = dict(update.outputs)
            if update.custom_properties:
                row.custom_properties = {**row.custom_properties, **update.custom_properties}
            row.update_time = utcnow()
            session.flush()
            ((_, context_ids),) = repo.executions_by_ids([row.id])
            return _execution(row, context_ids)

    def get_executions(
        self, *, context_id: int | None = None, ids: Sequence[int] = ()
    ) -> list[Execution]:
        """Executions in ``context_id`` and/or with ``ids`` (all given filters apply)."""
        if context_id is None and not ids:
            raise InvalidArgument("give context_id or ids to select executions")
        with self.db.session() as session:
            rows = MetadataRepository(session).list_executions(context_id=context_id, ids=ids)
            return [_execution(row, ctx) for row, ctx in rows]

    # -- artifacts and events ---------------------------------------------------------

    def record_artifacts(
        self,
        execution_id: int,
        event_type: EventType,
        bindings: Sequence[ArtifactBinding],
        context_ids: Sequence[int] = (),
    ) -> list[Artifact]:
        """Records artifacts with their events and context links, all or nothing.

        A binding whose artifact has an ``id`` links that existing artifact instead of
        recording a new one. Returns the artifacts in the order given.
        """
        _ids_positive([execution_id], "execution_id")
        shared_contexts = _ids_positive(context_ids, "context_ids")
        all_contexts = set(shared_contexts)
        existing_ids: set[int] = set()
        for i, binding in enumerate(bindings):
            field = f"artifacts[{i}]"
            art = binding.artifact
            all_contexts |= set(_ids_positive(art.context_ids, f"{field}.artifact.context_ids"))
            if binding.index < 0:
                raise InvalidArgument(f"{field}.index must not be negative (got {binding.index})")
            _limit(binding.path, f"{field}.path", NAME_LENGTH)
            if art.id:
                _ids_positive([art.id], f"{field}.artifact.id")
                existing_ids.add(art.id)
                continue
            _require(art.type, f"{field}.artifact.type", TYPE_LENGTH)
            _require(art.uri, f"{field}.artifact.uri", URI_LENGTH)
            _limit(art.name, f"{field}.artifact.name", NAME_LENGTH)
            if not (binding.path or art.name):
                raise InvalidArgument(f"{field}.path is required when the artifact has no name")
            if art.size_bytes < 0:
                raise InvalidArgument(f"{field}.artifact.size_bytes must not be negative")
            if art.sha256 and not _SHA256.fullmatch(art.sha256.lower()):
                raise InvalidArgument(f"{field}.artifact.sha256 must be 64 hexadecimal digits")

        def work(repo: MetadataRepository) -> list[Artifact]:
            if repo.get_execution(execution_id) is None:
                raise NotFound(f"execution_id: no execution with id {execution_id}")
            _exist(repo.missing_context_ids(all_contexts), "context_ids", "context")
            _exist(repo.missing_artifact_ids(existing_ids), "artifacts[].artifact.id", "artifact")
            known: dict[int, tuple[ArtifactRow, list[int]]] = {}
            if existing_ids:
                known = {row.id: (row, ctx) for row, ctx in repo.list_artifacts(ids=existing_ids)}
            for i, binding in enumerate(bindings):
                if binding.artifact.id and not (binding.path or known[binding.artifact.id][0].name):
                    raise InvalidArgument(
                        f"artifacts[{i}].path is required when the artifact has no name"
                    )

            new_rows = iter(
                repo.add_artifacts(
                    [
                        dict(
                            type=b.artifact.type,
                            uri=b.artifact.uri,
                            name=b.artifact.name,
                            artifact_metadata=dict(b.artifact.metadata),
                            size_bytes=b.artifact.size_bytes,
                            sha256=b.artifact.sha256.lower(),
                        )
                        for b in bindings
                        if not b.artifact.id
                    ]
                )
            )
            rows: list[ArtifactRow] = []
            events: list[tuple[int, int, str, str, int]] = []
            links: list[tuple[int, int]] = []
            for binding in bindings:
                row = known[binding.artifact.id][0] if binding.artifact.id else next(new_rows)
                rows.append(row)
                events.append(
                    (
                        execution_id,
                        row.id,
                        event_type.value,
                        binding.path or row.name,
                        binding.index,
                    )
                )
                links += [(c, row.id) for c in (*shared_contexts, *binding.artifact.context_ids)]
            repo.add_events(events)
            repo.attribute(links)

            contexts: dict[int, set[int]] = {}
            for row in rows:
                contexts.setdefault(row.id, set(known[row.id][1]) if row.id in known else set())
            for c, a in links:
                contexts[a].add(c)
            return [_artifact(row, sorted(contexts[row.id])) for row in rows]

        return self._write(work)

    def get_artifacts(
        self, *, context_id: int | None = None, ids: Sequence[int] = (), uri: str = ""
    ) -> list[Artifact]:
        """Artifacts in ``context_id``, with ``ids`` and/or at ``uri`` (all given filters apply)."""
        if context_id is None and not ids and not uri:
            raise InvalidArgument("give context_id, ids or uri to select artifacts")
        with self.db.session() as session:
            rows = MetadataRepository(session).list_artifacts(
                context_id=context_id, ids=ids, uri=uri or None
            )
            return [_artifact(row, ctx) for row, ctx in rows]

    def put_events(self, events: Sequence[Event]) -> None:
        """Adds events between existing executions and artifacts; repeating one is harmless."""
        for i, ev in enumerate(events):
            _ids_positive([ev.execution_id], f"events[{i}].execution_id")
            _ids_positive([ev.artifact_id], f"events[{i}].artifact_id")
            _require(ev.path, f"events[{i}].path", NAME_LENGTH)
            if ev.index < 0:
                raise InvalidArgument(f"events[{i}].index must not be negative (got {ev.index})")

        def work(repo: MetadataRepository) -> None:
            _exist(
                repo.missing_execution_ids(e.execution_id for e in events),
                "events[].execution_id",
                "execution",
            )
            _exist(
                repo.missing_artifact_ids(e.artifact_id for e in events),
                "events[].artifact_id",
                "artifact",
            )
            repo.add_events(
                [(e.execution_id, e.artifact_id, e.type.value, e.path, e.index) for e in events]
            )

        self._write(work)

    def get_events(
        self, *, execution_ids: Sequence[int] = (), artifact_ids: Sequence[int] = ()
    ) -> list[Event]:
        """Events of ``execution_ids`` and/or ``artifact_ids`` (all given filters apply)."""
        if not execution_ids and not artifact_ids:
            raise InvalidArgument("give execution_ids or artifact_ids to select events")
        with self.db.session() as session:
            rows = MetadataRepository(session).list_events(
                execution_ids=execution_ids, artifact_ids=artifact_ids
            )
            return [_event(row) for row in rows]

    def get_artifact_lineage(self, artifact_id: int) -> ArtifactLineage:
        """The artifact, the execution that produced it and the executions that consumed it.

        The producer is the execution of the artifact's first OUTPUT event (none for an
        imported artifact); consumers are the executions with an INPUT event, by id.
        """
        _ids_positive([artifact_id], "artifact_id")
        with self.db.session() as session:
            repo = MetadataRepository(session)
            found = repo.list_artifacts(ids=[artifact_id])
            if not found:
                raise NotFound(f"artifact_id: no artifact with id {artifact_id}")
            events = repo.list_events(artifact_ids=[artifact_id])
            producer_id = next(
                (e.execution_id for e in events if e.type == EventType.OUTPUT.value), None
            )
            consumer_ids = {e.execution_id for e in events if e.type == EventType.INPUT.value}
            wanted = consumer_ids | ({producer_id} if producer_id is not None else set())
            executions = {
                row.id: _execution(row, ctx) for row, ctx in repo.executions_by_ids(wanted)
            }
            return ArtifactLineage(
                artifact=_artifact(*found[0]),
                producer=executions[producer_id] if producer_id is not None else None,
                consumers=[executions[i] for i in sorted(consumer_ids)],
                events=[_event(e) for e in events],
            )


# -- validation ----------------------------------------------------------------------


def _require(value: str, field: str, max_length: int) -> None:
    if not value:
        raise InvalidArgument(f"{field} is required")
    _limit(value, field, max_length)


def _limit(value: str, field: str, max_length: int) -> None:
    if len(value) > max_length:
        raise InvalidArgument(f"{field} is {len(value)} characters long; the limit is {max_length}")


def _ids_positive(ids: Iterable[int], field: str) -> list[int]:
    result = list(dict.fromkeys(ids))
    bad = [i for i in result if i <= 0]
    if bad:
        raise InvalidArgument(f"{field}: ids are positive integers (got {bad[0]})")
    return result


def _exist(missing: Sequence[int], field: str, kind: str) -> None:
    if missing:
        listed = ", ".join(str(i) for i in missing)
        raise NotFound(f"{field}: no {kind} with id {listed}")


# -- rows to domain objects ------------------------------------------------------------


def _utc(value: datetime) -> datetime:
    """Aware UTC; SQLite hands back naive datetimes for the UTC values we stored."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def _context(row: ContextRow) -> Context:
    return Context(
        id=row.id,
        type=row.type,
        name=row.name,
        parent_id=row.parent_id,
        custom_properties=dict(row.custom_properties or {}),
        create_time=_utc(row.create_time),
    )


def _execution(row: ExecutionRow, context_ids: list[int]) -> Execution:
    return Execution(
        id=row.id,
        type=row.type,
        name=row.name,
        state=ExecutionState(row.state),
        context_ids=list(context_ids),
        inputs=dict(row.inputs or {}),
        outputs=dict(row.outputs or {}),
        custom_properties=dict(row.custom_properties or {}),
        create_time=_utc(row.create_time),
        update_time=_utc(row.update_time),
    )


def _artifact(row: ArtifactRow, context_ids: list[int]) -> Artifact:
    return Artifact(
        id=row.id,
        type=row.type,
        uri=row.uri,
        name=row.name,
        metadata=dict(row.artifact_metadata or {}),
        size_bytes=row.size_bytes,
        sha256=row.sha256,
        context_ids=list(context_ids),
        create_time=_utc(row.create_time),
    )


def _event(row: EventRow) -> Event:
    return Event(
        execution_id=row.execution_id,
        artifact_id=row.artifact_id,
        type=EventType(row.type),
        path=row.path,
        index=row.index,
        create_time=_utc(row.create_time),
    )
