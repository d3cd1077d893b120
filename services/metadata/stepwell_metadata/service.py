"""The metadata service layer: validation, transactions and the domain objects.

Each public method of :class:`MetadataService` is one transaction. Input is validated
before anything is written; a bad request raises :class:`~stepwell.errors.InvalidArgument`
(naming the field) or :class:`~stepwell.errors.NotFound` and leaves the database as it was.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, TypeVar

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
    FinishedExecution,
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
#: How many verified context ids a service remembers before starting over (a bound on
#: memory; forgetting only costs a lookup).
_KNOWN_CONTEXTS_LIMIT = 100_000
T = TypeVar("T")


class MetadataService:
    """Records and answers questions about contexts, executions, artifacts and lineage."""

    def __init__(self, db: Database) -> None:
        self.db = db
        # Replaced, never mutated, so threads read it without a lock.
        self._known_contexts: frozenset[int] = frozenset()

    def _write(self, work: Callable[[MetadataRepository], T]) -> T:
        """Runs ``work`` in a transaction, again when it collides with a concurrent writer.

        A collision is a unique constraint rejecting a row another transaction has just
        committed (the same context, event or link); the retry reads that row instead.
        """
        for attempt in range(1, _WRITE_ATTEMPTS + 1):
            try:
                with self.db.session() as session:
                    repo = MetadataRepository(session, self._known_contexts)
                    result = work(repo)
            except IntegrityError:
                # A foreign key may have rejected a context id remembered from a database
                # since replaced: the retry looks every id up (and answers NotFound).
                self._known_contexts = frozenset()
                if attempt == _WRITE_ATTEMPTS:
                    raise
                log.debug("write collided with a concurrent one; retrying (attempt %d)", attempt)
                continue
            if repo.verified_contexts:
                known = self._known_contexts
                if len(known) > _KNOWN_CONTEXTS_LIMIT:
                    known = frozenset()
                self._known_contexts = known | repo.verified_contexts
            return result
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
        """Records an execution (RUNNING unless ``new.state`` says otherwise) in its contexts,
        with its INPUT events (``new.input_events``), if any."""
        (created,) = self._create_executions([_check_new_execution(new, "")])
        return created

    def create_executions(self, news: Sequence[NewExecution]) -> list[Execution]:
        """Records several executions as :meth:`create_execution` does, all or nothing.

        Errors name the item (``executions[i]...``). Returns the executions in the order given.
        """
        return self._create_executions(
            [_check_new_execution(new, f"executions[{i}].") for i, new in enumerate(news)]
        )

    def _create_executions(self, items: Sequence[_NewItem]) -> list[Execution]:
        if not items:
            return []

        def work(repo: MetadataRepository) -> list[Execution]:
            missing = set(repo.missing_context_ids(c for item in items for c in item.context_ids))
            for item in items:
                _exist(
                    sorted(set(item.context_ids) & missing),
                    f"{item.field}execution.context_ids",
                    "context",
                )
            missing = set(
                repo.missing_artifact_ids(
                    e.artifact_id for item in items for e in item.new.input_events
                )
            )
            for item in items:
                for j, ev in enumerate(item.new.input_events):
                    _exist(
                        [ev.artifact_id] if ev.artifact_id in missing else [],
                        f"{item.field}input_events[{j}].artifact_id",
                        "artifact",
                    )
            now = utcnow()
            news: list[dict[str, Any]] = [
                dict(
                    type=item.new.type,
                    name=item.new.name,
                    state=(item.new.state or ExecutionState.RUNNING).value,
                    inputs=dict(item.new.inputs),
                    outputs=dict(item.new.outputs),
                    custom_properties=dict(item.new.custom_properties),
                )
                for item in items
            ]
            ids = repo.insert_executions(news, now)
            repo.associate(
                ((c, id_) for item, id_ in zip(items, ids, strict=True) for c in item.context_ids),
                new=True,
            )
            repo.add_events(
                [
                    (id_, ev.artifact_id, EventType.INPUT.value, ev.path, ev.index)
                    for item, id_ in zip(items, ids, strict=True)
                    for ev in item.new.input_events
                ],
                new_executions=True,
            )
            return [
                Execution(
                    id=id_,
                    type=fields["type"],
                    name=fields["name"],
                    state=ExecutionState(fields["state"]),
                    context_ids=sorted(item.context_ids),
                    inputs=dict(fields["inputs"]),
                    outputs=dict(fields["outputs"]),
                    custom_properties=dict(fields["custom_properties"]),
                    create_time=now,
                    update_time=now,
                )
                for item, id_, fields in zip(items, ids, news, strict=True)
            ]

        return self._write(work)

    def update_execution(self, update: ExecutionUpdate) -> Execution:
        """Sets the state and outputs of an execution and merges its custom properties."""
        _ids_positive([update.id], "id")
        with self.db.session() as session:
            repo = MetadataRepository(session)
            row = repo.get_execution(update.id, for_update=True)
            if row is None:
                raise NotFound(f"id: no execution with id {update.id}")
            _apply_update(row, update)
            session.flush()
            ((_, context_ids),) = repo.executions_by_ids([row.id])
            return _execution(row, context_ids)

    def finish_executions(self, finishes: Sequence[FinishedExecution]) -> list[list[Artifact]]:
        """Ends several executions in one transaction, all or nothing.

        For each, in order: its ``outputs`` are recorded with OUTPUT events as
        :meth:`record_artifacts` records them, unless the execution has OUTPUT events
        already (a retried finish keeps what the first one recorded); then ``update`` is
        applied as :meth:`update_execution` applies it, except that its state is required.
        Returns, per execution in the order given, the artifacts of its OUTPUT events in
        event order (path, then index).
        """
        recordings: list[_Recording] = []
        seen: dict[int, int] = {}
        for i, finish in enumerate(finishes):
            field = f"executions[{i}]"
            execution_id = finish.update.id
            _ids_positive([execution_id], f"{field}.update.id")
            if execution_id in seen:
                raise InvalidArgument(
                    f"{field}.update.id: execution {execution_id} is "
                    f"executions[{seen[execution_id]}] already"
                )
            seen[execution_id] = i
            if finish.update.state is None:
                raise InvalidArgument(f"{field}.update.state is required")
            recordings.append(
                _check_recording(
                    execution_id,
                    EventType.OUTPUT,
                    finish.outputs,
                    finish.context_ids,
                    artifacts_field=f"{field}.outputs",
                    contexts_field=f"{field}.context_ids",
                )
            )
        if not finishes:
            return []

        def work(repo: MetadataRepository) -> list[list[Artifact]]:
            ids = [r.execution_id for r in recordings]
            locked = repo.lock_executions(ids)
            for i, execution_id in enumerate(ids):
                if execution_id not in locked:
                    raise NotFound(
                        f"executions[{i}].update.id: no execution with id {execution_id}"
                    )
            fresh = [r for r in recordings if not locked[r.execution_id].has_outputs]
            recorded = dict(zip((r.execution_id for r in fresh), _record(repo, fresh), strict=True))
            now = utcnow()
            repo.update_executions(
                [
                    _update_values(f.update, locked[f.update.id].custom_properties, now)
                    for f in finishes
                ]
            )

            results: dict[int, list[Artifact]] = {}
            for r in fresh:
                in_order = _in_event_order(r, recorded[r.execution_id])
                if in_order is not None:
                    results[r.execution_id] = in_order
            # What the execution's OUTPUT events are is not known here for those that had
            # some already (a retried finish), nor in the odd case of two outputs bound to
            # the same path and index (ordered by event id): read them.
            unknown = [i for i in ids if i not in results]
            if unknown:
                results.update(_output_artifacts(repo, unknown))
            return [results.get(i, []) for i in ids]

        return self._write(work)

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
        recording = _check_recording(execution_id, event_type, bindings, context_ids)

        def work(repo: MetadataRepository) -> list[Artifact]:
            if repo.get_execution(execution_id) is None:
                raise NotFound(f"execution_id: no execution with id {execution_id}")
            (recorded,) = _record(repo, [recording])
            return recorded

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
            _check_event(ev, f"events[{i}]")

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


# -- shared by the single and the batch calls ----------------------------------------


@dataclass(frozen=True)
class _NewItem:
    """A validated execution to create; ``field`` prefixes the request fields errors name."""

    new: NewExecution
    context_ids: list[int]
    field: str


def _check_new_execution(new: NewExecution, field: str) -> _NewItem:
    _require(new.type, f"{field}execution.type", TYPE_LENGTH)
    _limit(new.name, f"{field}execution.name", NAME_LENGTH)
    context_ids = _ids_positive(new.context_ids, f"{field}execution.context_ids")
    for j, ev in enumerate(new.input_events):
        name = f"{field}input_events[{j}]"
        if ev.execution_id:
            raise InvalidArgument(
                f"{name}.execution_id must be 0: the new execution's id is filled in"
            )
        if ev.type != EventType.INPUT:
            raise InvalidArgument(f"{name}.type must be INPUT (got {ev.type.value})")
        _check_event(ev, name)
    return _NewItem(new, context_ids, field)


def _check_event(ev: Event, field: str) -> None:
    _ids_positive([ev.artifact_id], f"{field}.artifact_id")
    _require(ev.path, f"{field}.path", NAME_LENGTH)
    if ev.index < 0:
        raise InvalidArgument(f"{field}.index must not be negative (got {ev.index})")


@dataclass(frozen=True)
class _Recording:
    """Validated artifacts to record for one execution, with the request fields to name."""

    execution_id: int
    event_type: EventType
    bindings: Sequence[ArtifactBinding]
    shared_contexts: list[int]
    all_contexts: set[int]
    existing_ids: set[int]
    artifacts_field: str
    contexts_field: str


def _check_recording(
    execution_id: int,
    event_type: EventType,
    bindings: Sequence[ArtifactBinding],
    context_ids: Sequence[int],
    *,
    artifacts_field: str = "artifacts",
    contexts_field: str = "context_ids",
) -> _Recording:
    shared_contexts = _ids_positive(context_ids, contexts_field)
    all_contexts = set(shared_contexts)
    existing_ids: set[int] = set()
    for i, binding in enumerate(bindings):
        field = f"{artifacts_field}[{i}]"
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
    return _Recording(
        execution_id,
        event_type,
        bindings,
        shared_contexts,
        all_contexts,
        existing_ids,
        artifacts_field,
        contexts_field,
    )


def _record(repo: MetadataRepository, recordings: Sequence[_Recording]) -> list[list[Artifact]]:
    """Writes validated recordings of existing executions; per recording, its artifacts in
    the order given.

    However many recordings, the checks and writes are a fixed number of statements
    (SQLite adds one insert per new artifact: it cannot return many-row ids in order).
    """
    if not recordings:
        return []
    missing = set(repo.missing_context_ids(c for r in recordings for c in r.all_contexts))
    for r in recordings:
        _exist(sorted(r.all_contexts & missing), r.contexts_field, "context")
    missing = set(repo.missing_artifact_ids(a for r in recordings for a in r.existing_ids))
    for r in recordings:
        _exist(sorted(r.existing_ids & missing), f"{r.artifacts_field}[].artifact.id", "artifact")
    known: dict[int, tuple[ArtifactRow, list[int]]] = {}
    if any(r.existing_ids for r in recordings):
        known = {
            row.id: (row, ctx)
            for row, ctx in repo.list_artifacts(ids={a for r in recordings for a in r.existing_ids})
        }
    for r in recordings:
        for i, binding in enumerate(r.bindings):
            if binding.artifact.id and not (binding.path or known[binding.artifact.id][0].name):
                raise InvalidArgument(
                    f"{r.artifacts_field}[{i}].path is required when the artifact has no name"
                )

    now = utcnow()
    new_fields: list[dict[str, Any]] = [
        dict(
            type=b.artifact.type,
            uri=b.artifact.uri,
            name=b.artifact.name,
            metadata=dict(b.artifact.metadata),
            size_bytes=b.artifact.size_bytes,
            sha256=b.artifact.sha256.lower(),
        )
        for r in recordings
        for b in r.bindings
        if not b.artifact.id
    ]
    new_ids = repo.insert_artifacts(new_fields, now)
    new_rows = iter(zip(new_ids, new_fields, strict=True))
    # Per recording, per binding: the artifact's id, its fields (None for a known one).
    rows: list[list[tuple[int, dict[str, Any] | None]]] = []
    events: list[tuple[int, int, str, str, int]] = []
    links: list[tuple[int, int]] = []
    for r in recordings:
        rows.append([])
        for binding in r.bindings:
            if binding.artifact.id:
                id_, fields, name = binding.artifact.id, None, known[binding.artifact.id][0].name
            else:
                id_, fields = next(new_rows)
                name = fields["name"]
            rows[-1].append((id_, fields))
            path = binding.path or name
            events.append((r.execution_id, id_, r.event_type.value, path, binding.index))
            links += [(c, id_) for c in (*r.shared_contexts, *binding.artifact.context_ids)]
    fresh_ids = set(new_ids)
    repo.add_events(events, new_artifacts=fresh_ids)
    repo.attribute(links, new_ids=fresh_ids)

    contexts: dict[int, set[int]] = {}
    for id_, _ in (row for recorded in rows for row in recorded):
        contexts.setdefault(id_, set(known[id_][1]) if id_ in known else set())
    for c, a in links:
        contexts[a].add(c)

    def artifact(id_: int, fields: dict[str, Any] | None) -> Artifact:
        ctx = sorted(contexts[id_])
        if fields is None:
            return _artifact(known[id_][0], ctx)
        return Artifact(
            id=id_,
            type=fields["type"],
            uri=fields["uri"],
            name=fields["name"],
            metadata=dict(fields["metadata"]),
            size_bytes=fields["size_bytes"],
            sha256=fields["sha256"],
            context_ids=ctx,
            create_time=now,
        )

    return [[artifact(id_, fields) for id_, fields in recorded] for recorded in rows]


def _in_event_order(recording: _Recording, artifacts: list[Artifact]) -> list[Artifact] | None:
    """The artifacts of a recording of an execution that had no events of its type, in the
    order of those events (path, then index); None when two events share a path and index,
    whose order is their ids'."""
    events: dict[tuple[str, int, int], Artifact] = {}
    for binding, art in zip(recording.bindings, artifacts, strict=True):
        # A repeated binding records one event.
        events.setdefault((binding.path or art.name, binding.index, art.id), art)
    positions = [(path, index) for path, index, _ in events]
    if len(set(positions)) < len(positions):
        return None
    return [events[key] for key in sorted(events, key=lambda k: (k[0], k[1]))]


def _output_artifacts(repo: MetadataRepository, ids: Sequence[int]) -> dict[int, list[Artifact]]:
    """Per execution, the artifacts of its OUTPUT events in event order (path, index, id)."""
    events = repo.list_events(execution_ids=ids, type_=EventType.OUTPUT.value)
    artifact_ids = {e.artifact_id for e in events}
    artifacts = {
        row.id: _artifact(row, ctx)
        for row, ctx in (repo.list_artifacts(ids=artifact_ids) if artifact_ids else [])
    }
    by_execution: dict[int, list[Artifact]] = {i: [] for i in ids}
    for ev in sorted(events, key=lambda e: (e.path, e.index, e.id)):
        by_execution[ev.execution_id].append(artifacts[ev.artifact_id])
    return by_execution


def _update_values(
    update: ExecutionUpdate, custom_properties: dict[str, Any], now: datetime
) -> dict[str, Any]:
    """The ``md_executions`` columns :func:`_apply_update` would set, with the row's ``id``."""
    values: dict[str, Any] = {"id": update.id, "update_time": now}
    if update.state is not None:
        values["state"] = update.state.value
    if update.outputs is not None:
        values["outputs"] = dict(update.outputs)
    if update.custom_properties:
        values["custom_properties"] = {**custom_properties, **update.custom_properties}
    return values


def _apply_update(row: ExecutionRow, update: ExecutionUpdate) -> None:
    if update.state is not None:
        row.state = update.state.value
    if update.outputs is not None:
        row.outputs = dict(update.outputs)
    if update.custom_properties:
        row.custom_properties = {**row.custom_properties, **update.custom_properties}
    row.update_time = utcnow()


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
