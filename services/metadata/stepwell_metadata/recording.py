"""Checks and writes shared by the metadata service's single and batch calls: a bad
item raises :class:`~stepwell.errors.InvalidArgument` or :class:`~stepwell.errors.NotFound`
naming the request field, before anything is written."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from stepwell.errors import InvalidArgument, NotFound
from stepwell_metadata.domain import (
    Artifact,
    ArtifactBinding,
    Event,
    EventType,
    ExecutionUpdate,
    NewExecution,
)
from stepwell_metadata.models import (
    NAME_LENGTH,
    TYPE_LENGTH,
    URI_LENGTH,
    ArtifactRow,
    ExecutionRow,
    utcnow,
)
from stepwell_metadata.repository import MetadataRepository
from stepwell_metadata.rows import artifact_of

SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class NewItem:
    """A validated execution to create; ``field`` prefixes the request fields errors name."""

    new: NewExecution
    context_ids: list[int]
    field: str


def check_new_execution(new: NewExecution, field: str) -> NewItem:
    require(new.type, f"{field}execution.type", TYPE_LENGTH)
    check_length(new.name, f"{field}execution.name", NAME_LENGTH)
    context_ids = ids_positive(new.context_ids, f"{field}execution.context_ids")
    for j, ev in enumerate(new.input_events):
        name = f"{field}input_events[{j}]"
        if ev.execution_id:
            raise InvalidArgument(
                f"{name}.execution_id must be 0: the new execution's id is filled in"
            )
        if ev.type != EventType.INPUT:
            raise InvalidArgument(f"{name}.type must be INPUT (got {ev.type.value})")
        check_event(ev, name)
    return NewItem(new, context_ids, field)


def check_event(ev: Event, field: str) -> None:
    ids_positive([ev.artifact_id], f"{field}.artifact_id")
    require(ev.path, f"{field}.path", NAME_LENGTH)
    if ev.index < 0:
        raise InvalidArgument(f"{field}.index must not be negative (got {ev.index})")


@dataclass(frozen=True)
class Recording:
    """Validated artifacts to record for one execution, with the request fields to name."""

    execution_id: int
    event_type: EventType
    bindings: Sequence[ArtifactBinding]
    shared_contexts: list[int]
    all_contexts: set[int]
    existing_ids: set[int]
    artifacts_field: str
    contexts_field: str


def check_recording(
    execution_id: int,
    event_type: EventType,
    bindings: Sequence[ArtifactBinding],
    context_ids: Sequence[int],
    *,
    artifacts_field: str = "artifacts",
    contexts_field: str = "context_ids",
) -> Recording:
    shared_contexts = ids_positive(context_ids, contexts_field)
    all_contexts = set(shared_contexts)
    existing_ids: set[int] = set()
    for i, binding in enumerate(bindings):
        field = f"{artifacts_field}[{i}]"
        art = binding.artifact
        all_contexts |= set(ids_positive(art.context_ids, f"{field}.artifact.context_ids"))
        if binding.index < 0:
            raise InvalidArgument(f"{field}.index must not be negative (got {binding.index})")
        check_length(binding.path, f"{field}.path", NAME_LENGTH)
        if art.id:
            ids_positive([art.id], f"{field}.artifact.id")
            existing_ids.add(art.id)
            continue
        require(art.type, f"{field}.artifact.type", TYPE_LENGTH)
        require(art.uri, f"{field}.artifact.uri", URI_LENGTH)
        check_length(art.name, f"{field}.artifact.name", NAME_LENGTH)
        if not (binding.path or art.name):
            raise InvalidArgument(f"{field}.path is required when the artifact has no name")
        if art.size_bytes < 0:
            raise InvalidArgument(f"{field}.artifact.size_bytes must not be negative")
        if art.sha256 and not SHA256.fullmatch(art.sha256.lower()):
            raise InvalidArgument(f"{field}.artifact.sha256 must be 64 hexadecimal digits")
    return Recording(
        execution_id,
        event_type,
        bindings,
        shared_contexts,
        all_contexts,
        existing_ids,
        artifacts_field,
        contexts_field,
    )


def record_outputs(repo: MetadataRepository, recordings: Sequence[Recording]) -> list[list[Artifact]]:
    """Writes validated recordings of existing executions; per recording, its artifacts in
    the order given.

    However many recordings, the checks and writes are a fixed number of statements
    (SQLite adds one insert per new artifact: it cannot return many-row ids in order).
    """
    if not recordings:
        return []
    missing = set(repo.missing_context_ids(c for r in recordings for c in r.all_contexts))
    for r in recordings:
        require_found(sorted(r.all_contexts & missing), r.contexts_field, "context")
    missing = set(repo.missing_artifact_ids(a for r in recordings for a in r.existing_ids))
    for r in recordings:
        require_found(sorted(r.existing_ids & missing), f"{r.artifacts_field}[].artifact.id", "artifact")
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
            return artifact_of(known[id_][0], ctx)
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


def in_event_order(recording: Recording, artifacts: list[Artifact]) -> list[Artifact] | None:
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


def output_artifacts(repo: MetadataRepository, ids: Sequence[int]) -> dict[int, list[Artifact]]:
    """Per execution, the artifacts of its OUTPUT events in event order (path, index, id)."""
    events = repo.list_events(execution_ids=ids, type_=EventType.OUTPUT.value)
    artifact_ids = {e.artifact_id for e in events}
    artifacts = {
        row.id: artifact_of(row, ctx)
        for row, ctx in (repo.list_artifacts(ids=artifact_ids) if artifact_ids else [])
    }
    by_execution: dict[int, list[Artifact]] = {i: [] for i in ids}
    for ev in sorted(events, key=lambda e: (e.path, e.index, e.id)):
        by_execution[ev.execution_id].append(artifacts[ev.artifact_id])
    return by_execution


def update_values(
    update: ExecutionUpdate, custom_properties: dict[str, Any], now: datetime
) -> dict[str, Any]:
    """The ``md_executions`` columns :func:`apply_update` would set, with the row's ``id``."""
    values: dict[str, Any] = {"id": update.id, "update_time": now}
    if update.state is not None:
        values["state"] = update.state.value
    if update.outputs is not None:
        values["outputs"] = dict(update.outputs)
    if update.custom_properties:
        values["custom_properties"] = {**custom_properties, **update.custom_properties}
    return values


def apply_update(row: ExecutionRow, update: ExecutionUpdate) -> None:
    if update.state is not None:
        row.state = update.state.value
    if update.outputs is not None:
        row.outputs = dict(update.outputs)
    if update.custom_properties:
        row.custom_properties = {**row.custom_properties, **update.custom_properties}
    row.update_time = utcnow()


# -- validation ----------------------------------------------------------------------


def require(value: str, field: str, max_length: int) -> None:
    if not value:
        raise InvalidArgument(f"{field} is required")
    check_length(value, field, max_length)


def check_length(value: str, field: str, max_length: int) -> None:
    if len(value) > max_length:
        raise InvalidArgument(f"{field} is {len(value)} characters long; the limit is {max_length}")


def ids_positive(ids: Iterable[int], field: str) -> list[int]:
    result = list(dict.fromkeys(ids))
    bad = [i for i in result if i <= 0]
    if bad:
        raise InvalidArgument(f"{field}: ids are positive integers (got {bad[0]})")
    return result


def require_found(missing: Sequence[int], field: str, kind: str) -> None:
    if missing:
        listed = ", ".join(str(i) for i in missing)
        raise NotFound(f"{field}: no {kind} with id {listed}")


