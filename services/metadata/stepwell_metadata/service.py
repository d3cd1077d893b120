"""The metadata service layer: validation, transactions and the domain objects.

Each public method of :class:`MetadataService` is one transaction. Input is validated
before anything is written; a bad request raises :class:`~stepwell.errors.InvalidArgument`
(naming the field) or :class:`~stepwell.errors.NotFound` and leaves the database as it was.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
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
    utcnow,
)
from stepwell_metadata.recording import (
    NewItem,
    Recording,
    apply_update,
    check_event,
    check_new_execution,
    check_recording,
    ids_positive,
    in_event_order,
    output_artifacts,
    record_outputs,
    require,
    require_found,
    update_values,
)
from stepwell_metadata.repository import MetadataRepository
from stepwell_metadata.rows import artifact_of, context_of, event_of, execution_of

log = logging.getLogger(__name__)

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
        require(new.type, "type", TYPE_LENGTH)
        require(new.name, "name", NAME_LENGTH)
        ids_positive([new.parent_id] if new.parent_id is not None else [], "parent_id")

        def work(repo: MetadataRepository) -> Context:
            row = repo.find_context(new.type, new.name)
            if row is None:
                if new.parent_id is not None and repo.missing_context_ids([new.parent_id]):
                    raise NotFound(f"parent_id: no context with id {new.parent_id}")
                row = repo.add_context(
                    new.type, new.name, new.parent_id, dict(new.custom_properties)
                )
            return context_of(row)

        return self._write(work)

    def get_context(self, type_: str, name: str) -> Context:
        """The context with this type and name; :class:`NotFound` if there is none."""
        require(type_, "type", TYPE_LENGTH)
        require(name, "name", NAME_LENGTH)
        with self.db.session() as session:
            row = MetadataRepository(session).find_context(type_, name)
            if row is None:
                raise NotFound(f"no context of type {type_!r} named {name!r}")
            return context_of(row)

    # -- executions -------------------------------------------------------------------

    def create_execution(self, new: NewExecution) -> Execution:
        """Records an execution (RUNNING unless ``new.state`` says otherwise) in its contexts,
        with its INPUT events (``new.input_events``), if any."""
        (created,) = self._create_executions([check_new_execution(new, "")])
        return created

    def create_executions(self, news: Sequence[NewExecution]) -> list[Execution]:
        """Records several executions as :meth:`create_execution` does, all or nothing.

        Errors name the item (``executions[i]...``). Returns the executions in the order given.
        """
        return self._create_executions(
            [check_new_execution(new, f"executions[{i}].") for i, new in enumerate(news)]
        )

    def _create_executions(self, items: Sequence[NewItem]) -> list[Execution]:
        if not items:
            return []

        def work(repo: MetadataRepository) -> list[Execution]:
            missing = set(repo.missing_context_ids(c for item in items for c in item.context_ids))
            for item in items:
                require_found(
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
                    require_found(
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
        ids_positive([update.id], "id")
        with self.db.session() as session:
            repo = MetadataRepository(session)
            row = repo.get_execution(update.id, for_update=True)
            if row is None:
                raise NotFound(f"id: no execution with id {update.id}")
            apply_update(row, update)
            session.flush()
            ((_, context_ids),) = repo.executions_by_ids([row.id])
            return execution_of(row, context_ids)

    def finish_executions(self, finishes: Sequence[FinishedExecution]) -> list[list[Artifact]]:
        """Ends several executions in one transaction, all or nothing.

        For each, in order: its ``outputs`` are recorded with OUTPUT events as
        :meth:`record_artifacts` records them, unless the execution has OUTPUT events
        already (a retried finish keeps what the first one recorded); then ``update`` is
        applied as :meth:`update_execution` applies it, except that its state is required.
        Returns, per execution in the order given, the artifacts of its OUTPUT events in
        event order (path, then index).
        """
        recordings: list[Recording] = []
        seen: dict[int, int] = {}
        for i, finish in enumerate(finishes):
            field = f"executions[{i}]"
            execution_id = finish.update.id
            ids_positive([execution_id], f"{field}.update.id")
            if execution_id in seen:
                raise InvalidArgument(
                    f"{field}.update.id: execution {execution_id} is "
                    f"executions[{seen[execution_id]}] already"
                )
            seen[execution_id] = i
            if finish.update.state is None:
                raise InvalidArgument(f"{field}.update.state is required")
            recordings.append(
                check_recording(
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
            recorded = dict(zip((r.execution_id for r in fresh), record_outputs(repo, fresh), strict=True))
            now = utcnow()
            repo.update_executions(
                [
                    update_values(f.update, locked[f.update.id].custom_properties, now)
                    for f in finishes
                ]
            )

            results: dict[int, list[Artifact]] = {}
            for r in fresh:
                in_order = in_event_order(r, recorded[r.execution_id])
                if in_order is not None:
                    results[r.execution_id] = in_order
            # What the execution's OUTPUT events are is not known here for those that had
            # some already (a retried finish), nor in the odd case of two outputs bound to
            # the same path and index (ordered by event id): read them.
            unknown = [i for i in ids if i not in results]
            if unknown:
                results.update(output_artifacts(repo, unknown))
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
            return [execution_of(row, ctx) for row, ctx in rows]

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
        ids_positive([execution_id], "execution_id")
        recording = check_recording(execution_id, event_type, bindings, context_ids)

        def work(repo: MetadataRepository) -> list[Artifact]:
            if repo.get_execution(execution_id) is None:
                raise NotFound(f"execution_id: no execution with id {execution_id}")
            (recorded,) = record_outputs(repo, [recording])
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
            return [artifact_of(row, ctx) for row, ctx in rows]

    def put_events(self, events: Sequence[Event]) -> None:
        """Adds events between existing executions and artifacts; repeating one is harmless."""
        for i, ev in enumerate(events):
            ids_positive([ev.execution_id], f"events[{i}].execution_id")
            check_event(ev, f"events[{i}]")

        def work(repo: MetadataRepository) -> None:
            require_found(
                repo.missing_execution_ids(e.execution_id for e in events),
                "events[].execution_id",
                "execution",
            )
            require_found(
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
            return [event_of(row) for row in rows]

    def get_artifact_lineage(self, artifact_id: int) -> ArtifactLineage:
        """The artifact, the execution that produced it and the executions that consumed it.

        The producer is the execution of the artifact's first OUTPUT event (none for an
        imported artifact); consumers are the executions with an INPUT event, by id.
        """
        ids_positive([artifact_id], "artifact_id")
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
                row.id: execution_of(row, ctx) for row, ctx in repo.executions_by_ids(wanted)
            }
            return ArtifactLineage(
                artifact=artifact_of(*found[0]),
                producer=executions[producer_id] if producer_id is not None else None,
                consumers=[executions[i] for i in sorted(consumer_ids)],
                events=[event_of(e) for e in events],
            )
