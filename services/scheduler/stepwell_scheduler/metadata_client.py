"""Records runs, executions, artifacts and events in the metadata service (kfp-facts §4.5)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format, struct_pb2

from stepwell.v1 import metadata_pb2 as pb
from stepwell.v1 import metadata_pb2_grpc
from stepwell_scheduler.peers import LazyStub

log = logging.getLogger(__name__)

PIPELINE_CONTEXT = "system.Pipeline"
RUN_CONTEXT = "system.PipelineRun"
CONTAINER_EXECUTION = "system.ContainerExecution"
DAG_EXECUTION = "system.DAGExecution"
IMPORTER_EXECUTION = "system.ImporterExecution"

STATES = {
    "RUNNING": pb.Execution.RUNNING,
    "SUCCEEDED": pb.Execution.COMPLETE,
    "FAILED": pb.Execution.FAILED,
    "CANCELED": pb.Execution.CANCELED,
    "SKIPPED": pb.Execution.CANCELED,
    "CACHED": pb.Execution.CACHED,
}


def to_struct(value: Mapping[str, Any] | None) -> struct_pb2.Struct:
    """A protobuf Struct holding the JSON dict ``value``."""
    struct = struct_pb2.Struct()
    if value:
        json_format.ParseDict(dict(value), struct)
    return struct


@dataclass(frozen=True)
class ExecutionStart:
    """An execution for :meth:`MetadataClient.start_executions` to create (RUNNING)."""

    execution_type: str
    name: str
    #: Zeros (contexts not created) are dropped.
    context_ids: list[int]
    #: Input parameter values.
    inputs: Mapping[str, Any]
    custom_properties: Mapping[str, Any]
    #: Input artifact records by input name; those with an ``artifact_id`` get an INPUT
    #: event (path: the input name, index: the position in the list).
    input_artifacts: Mapping[str, list[Mapping[str, Any]]] = field(default_factory=dict)


@dataclass(frozen=True)
class ExecutionEnd:
    """The end of an execution for :meth:`MetadataClient.finish_executions`."""

    execution_id: int
    #: A RuntimeState name, as :meth:`MetadataClient.finish_execution` takes it.
    state: str
    #: Output parameter values.
    parameters: Mapping[str, Any]
    #: Output artifact records by output name, as :meth:`MetadataClient.record_outputs`
    #: takes them (uri, schema_title, metadata, size, sha256).
    artifacts: Mapping[str, list[Mapping[str, Any]]] = field(default_factory=dict)
    #: Contexts the output artifacts are attributed to; zeros are dropped.
    context_ids: list[int] = field(default_factory=list)
    #: Custom properties merged into the execution's.
    custom: Mapping[str, Any] = field(default_factory=dict)


def _execution(
    execution_type: str,
    name: str,
    context_ids: list[int],
    inputs: Mapping[str, Any],
    custom_properties: Mapping[str, Any],
) -> pb.Execution:
    return pb.Execution(
        type=execution_type,
        name=name,
        state=pb.Execution.RUNNING,
        context_ids=[c for c in context_ids if c],
        inputs=to_struct(inputs),
        custom_properties=to_struct(custom_properties),
    )


def _artifact_events(
    execution_id: int,
    event_type: pb.Event.Type,
    artifacts: Mapping[str, list[Mapping[str, Any]]],
) -> list[pb.Event]:
    """Events to the records that have an ``artifact_id``; the index counts every record."""
    return [
        pb.Event(
            execution_id=execution_id,
            artifact_id=int(a["artifact_id"]),
            type=event_type,
            path=name,
            index=i,
        )
        for name, records in artifacts.items()
        for i, a in enumerate(records)
        if a.get("artifact_id")
    ]


def _output_items(
    artifacts: Mapping[str, list[Mapping[str, Any]]],
) -> tuple[list[pb.ArtifactAndEvent], list[tuple[str, int]]]:
    """The artifacts to record for output records, with their (output name, index)."""
    items = []
    keys: list[tuple[str, int]] = []
    for name, records in artifacts.items():
        for i, a in enumerate(records):
            items.append(
                pb.ArtifactAndEvent(
                    artifact=pb.Artifact(
                        type=a.get("schema_title") or "system.Artifact",
                        uri=a.get("uri", ""),
                        name=name,
                        metadata=to_struct({**(a.get("metadata") or {}), "display_name": name}),
                        size_bytes=int(a.get("size") or 0),
                        sha256=a.get("sha256") or "",
                    ),
                    path=name,
                    index=i,
                )
            )
            keys.append((name, i))
    return items, keys


def _update(
    execution_id: int, state: str, outputs: Mapping[str, Any] | None, custom: Mapping[str, Any]
) -> pb.UpdateExecutionRequest:
    return pb.UpdateExecutionRequest(
        id=execution_id,
        state=STATES.get(state, pb.Execution.STATE_UNSPECIFIED),
        outputs=to_struct(outputs),
        custom_properties=to_struct(custom),
    )


def _ids_by_name(names: Sequence[str], artifacts: Sequence[pb.Artifact]) -> dict[str, list[int]]:
    ids: dict[str, list[int]] = {}
    for name, artifact in zip(names, artifacts, strict=False):
        ids.setdefault(name, []).append(int(artifact.id))
    return ids


class MetadataClient:
    """The scheduler's calls to the metadata service; the stub is opened on first use."""

    def __init__(self, address: Callable[[], str], timeout: float = 10.0) -> None:
        self._stub = LazyStub(address, metadata_pb2_grpc.MetadataStub)
        self.timeout = timeout

    def run_contexts(self, pipeline_name: str, run_id: str, run_root: str, namespace: str = "") -> tuple[int, int]:
        """Ids of the ``system.Pipeline`` and ``system.PipelineRun`` contexts (created if absent)."""
        stub = self._stub.get()
        pipeline = stub.GetOrCreateContext(
            pb.GetOrCreateContextRequest(type=PIPELINE_CONTEXT, name=pipeline_name), timeout=self.timeout
        )
        run = stub.GetOrCreateContext(
            pb.GetOrCreateContextRequest(
                type=RUN_CONTEXT,
                name=run_id,
                parent_id=pipeline.id,
                custom_properties=to_struct({"pipeline_root": run_root, "namespace": namespace}),
            ),
            timeout=self.timeout,
        )
        return int(pipeline.id), int(run.id)

    def start_execution(
        self,
        *,
        execution_type: str,
        name: str,
        context_ids: list[int],
        inputs: Mapping[str, Any],
        custom_properties: Mapping[str, Any],
    ) -> int:
        """Creates a RUNNING execution and returns its id."""
        execution = _execution(execution_type, name, context_ids, inputs, custom_properties)
        created = self._stub.get().CreateExecution(pb.CreateExecutionRequest(execution=execution), timeout=self.timeout)
        return int(created.id)

    def task_executions(self, context_id: int, name: str, run_id: str) -> dict[int, tuple[int, bool]]:
        """The executions recorded for a task of a run, by attempt: ``(id, still RUNNING)``.

        Used when a restarted scheduler cannot tell whether it created an execution
        before it was killed: executions are keyed by run, task and attempt.
        """
        if not context_id:
            return {}
        reply = self._stub.get().GetExecutions(pb.GetExecutionsRequest(context_id=context_id), timeout=self.timeout)
        found: dict[int, tuple[int, bool]] = {}
        for execution in reply.executions:
            props = json_format.MessageToDict(execution.custom_properties)
            if execution.name == name and props.get("run_id") == run_id:
                attempt = int(float(props.get("attempt") or 0))
                found[attempt] = (int(execution.id), execution.state == pb.Execution.RUNNING)
        return found

    def recorded_outputs(self, execution_id: int) -> dict[str, list[int]]:
        """Ids of the artifacts already recorded as the execution's outputs, by output name
        (empty when none are): lets a replayed harvest skip recording them again."""
        reply = self._stub.get().GetEvents(pb.GetEventsRequest(execution_ids=[execution_id]), timeout=self.timeout)
        found: dict[str, dict[int, int]] = {}
        for event in reply.events:
            if event.type == pb.Event.OUTPUT:
                found.setdefault(event.path, {})[event.index] = int(event.artifact_id)
        return {name: [ids[i] for i in sorted(ids)] for name, ids in found.items()}

    def record_inputs(self, execution_id: int, artifacts: Mapping[str, list[Mapping[str, Any]]]) -> None:
        """INPUT events linking the execution to the (already recorded) artifacts it consumes."""
        events = _artifact_events(execution_id, pb.Event.INPUT, artifacts)
        if events:
            self._stub.get().PutEvents(pb.PutEventsRequest(events=events), timeout=self.timeout)

    def record_outputs(
        self,
        execution_id: int,
        artifacts: Mapping[str, list[Mapping[str, Any]]],
        context_ids: list[int],
    ) -> dict[str, list[int]]:
        """Records produced artifacts with OUTPUT events; returns their ids by output name."""
        items, keys = _output_items(artifacts)
        if not items:
            return {}
        reply = self._stub.get().RecordArtifacts(
            pb.RecordArtifactsRequest(
                execution_id=execution_id,
                event_type=pb.Event.OUTPUT,
                artifacts=items,
                context_ids=[c for c in context_ids if c],
            ),
            timeout=self.timeout,
        )
        return _ids_by_name([name for name, _ in keys], reply.artifacts)

    def finish_execution(
        self, execution_id: int, state: str, outputs: Mapping[str, Any] | None = None, **custom: Any
    ) -> None:
        """Sets the execution's final state (a RuntimeState name) and output parameters."""
        self._stub.get().UpdateExecution(_update(execution_id, state, outputs, custom), timeout=self.timeout)

    def start_executions(self, starts: Sequence[ExecutionStart]) -> list[int]:
        """Creates RUNNING executions with their INPUT events in one call (one transaction);
        returns their ids in the order given."""
        if not starts:
            return []
        reply = self._stub.get().CreateExecutions(
            pb.CreateExecutionsRequest(
                executions=[
                    pb.NewExecution(
                        execution=_execution(
                            s.execution_type, s.name, s.context_ids, s.inputs, s.custom_properties
                        ),
                        input_events=_artifact_events(0, pb.Event.INPUT, s.input_artifacts),
                    )
                    for s in starts
                ]
            ),
            timeout=self.timeout,
        )
        return [int(e.id) for e in reply.executions]

    def finish_executions(self, ends: Sequence[ExecutionEnd]) -> list[dict[str, list[int]]]:
        """Ends executions in one call (one transaction): records each one's output artifacts
        with OUTPUT events, then sets its final state, output parameters and custom properties.

        Returns, per end in the order given, its output artifact ids by output name (in
        record order). An execution whose outputs were recorded already (a replayed
        harvest) keeps them, and those are returned; nothing is recorded twice.
        Raises ValueError, before calling, for a state that has no execution state.
        """
        if not ends:
            return []
        requests = []
        keys: list[list[tuple[str, int]]] = []
        for end in ends:
            if end.state not in STATES:
                # The service rejects a finish without a state, and with it the whole batch.
                raise ValueError(f"execution {end.execution_id}: cannot end in state {end.state!r}")
            items, item_keys = _output_items(end.artifacts)
            requests.append(
                pb.FinishedExecution(
                    update=_update(end.execution_id, end.state, end.parameters, end.custom),
                    outputs=items,
                    context_ids=[c for c in end.context_ids if c],
                )
            )
            keys.append(item_keys)
        reply = self._stub.get().FinishExecutions(
            pb.FinishExecutionsRequest(executions=requests), timeout=self.timeout
        )
        results = []
        for item_keys, result in zip(keys, reply.results, strict=True):
            if len(item_keys) == len(result.artifacts):
                # The reply lists outputs by (name, index), whether recorded now or before.
                names = [name for name, _ in sorted(item_keys)]
            else:
                # Outputs recorded before that differ from those given: record_outputs
                # names each artifact after its output.
                names = [a.name for a in result.artifacts]
            results.append(_ids_by_name(names, result.artifacts))
        return results

    def lookup_cache(self, pipeline_name: str, namespace: str, fingerprint: str) -> dict[str, Any] | None:
        """The newest cache entry for ``fingerprint``: ``{"execution_id", "outputs"}``, or None."""
        reply = self._stub.get().LookupCacheEntry(
            pb.LookupCacheEntryRequest(pipeline_name=pipeline_name, namespace=namespace, fingerprint=fingerprint),
            timeout=self.timeout,
        )
        if not reply.found:
            return None
        outputs = json_format.MessageToDict(reply.entry.outputs)
        for records in (outputs.get("artifacts") or {}).values():
            for record in records:
                if record.get("artifact_id") is not None:
                    record["artifact_id"] = int(record["artifact_id"])
        return {"execution_id": int(reply.entry.execution_id), "outputs": outputs}

    def put_cache_entry(
        self,
        *,
        pipeline_name: str,
        namespace: str,
        fingerprint: str,
        run_id: str,
        task_name: str,
        execution_id: int,
        outputs: Mapping[str, Any],
    ) -> None:
        """Adds a cache entry for a successful execution."""
        self._stub.get().PutCacheEntry(
            pb.PutCacheEntryRequest(
                entry=pb.CacheEntry(
                    pipeline_name=pipeline_name,
                    namespace=namespace,
                    fingerprint=fingerprint,
                    run_id=run_id,
                    task_name=task_name,
                    execution_id=execution_id,
                    outputs=to_struct(outputs),
                )
            ),
            timeout=self.timeout,
        )

    def record_cached(
        self,
        execution_id: int,
        artifacts: Mapping[str, list[Mapping[str, Any]]],
        cached_execution_id: int,
        fingerprint: str,
    ) -> None:
        """OUTPUT events from a cached execution to the artifacts it reuses (the same records)."""
        events = _artifact_events(execution_id, pb.Event.OUTPUT, artifacts)
        if events:
            self._stub.get().PutEvents(pb.PutEventsRequest(events=events), timeout=self.timeout)
        self._stub.get().UpdateExecution(
            pb.UpdateExecutionRequest(
                id=execution_id,
                custom_properties=to_struct({"cached_execution_id": cached_execution_id, "cache_fingerprint": fingerprint}),
            ),
            timeout=self.timeout,
        )

    def close(self) -> None:
        """Closes the channel."""
        self._stub.close()
