"""Records runs, executions, artifacts and events in the metadata service (kfp-facts §4.5)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
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
        execution = pb.Execution(
            type=execution_type,
            name=name,
            state=pb.Execution.RUNNING,
            context_ids=[c for c in context_ids if c],
            inputs=to_struct(inputs),
            custom_properties=to_struct(custom_properties),
        )
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
        events = [
            pb.Event(execution_id=execution_id, artifact_id=int(a["artifact_id"]), type=pb.Event.INPUT, path=name, index=i)
            for name, records in artifacts.items()
            for i, a in enumerate(records)
            if a.get("artifact_id")
        ]
        if events:
            self._stub.get().PutEvents(pb.PutEventsRequest(events=events), timeout=self.timeout)

    def record_outputs(
        self,
        execution_id: int,
        artifacts: Mapping[str, list[Mapping[str, Any]]],
        context_ids: list[int],
    ) -> dict[str, list[int]]:
        """Records produced artifacts with OUTPUT events; returns their ids by output name."""
        items = []
        keys: list[str] = []
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
                keys.append(name)
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
        ids: dict[str, list[int]] = {}
        for name, artifact in zip(keys, reply.artifacts, strict=False):
            ids.setdefault(name, []).append(int(artifact.id))
        return ids

    def finish_execution(
        self, execution_id: int, state: str, outputs: Mapping[str, Any] | None = None, **custom: Any
    ) -> None:
        """Sets the execution's final state (a RuntimeState name) and output parameters."""
        self._stub.get().UpdateExecution(
            pb.UpdateExecutionRequest(
                id=execution_id,
                state=STATES.get(state, pb.Execution.STATE_UNSPECIFIED),
                outputs=to_struct(outputs),
                custom_properties=to_struct(custom),
            ),
            timeout=self.timeout,
        )

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
        events = [
            pb.Event(execution_id=execution_id, artifact_id=int(a["artifact_id"]), type=pb.Event.OUTPUT, path=name, index=i)
            for name, records in artifacts.items()
            for i, a in enumerate(records)
            if a.get("artifact_id")
        ]
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
