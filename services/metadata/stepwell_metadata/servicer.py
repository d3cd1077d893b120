"""The gRPC face of the metadata service: converts protobuf messages to domain objects and back.

No logic lives here beyond conversion; :class:`~stepwell_metadata.service.MetadataService`
validates and records. Every method is wrapped with :func:`~stepwell.server.rpc_errors`,
so Stepwell errors become their gRPC status codes.
"""

from __future__ import annotations

from collections.abc import Iterable

import grpc

from stepwell.errors import InvalidArgument
from stepwell.protoconv import datetime_to_timestamp as timestamp
from stepwell.protoconv import dict_to_struct, struct_to_dict
from stepwell.server import rpc_errors
from stepwell.v1 import metadata_pb2 as pb
from stepwell.v1 import metadata_pb2_grpc
from stepwell_metadata import domain
from stepwell_metadata.cache import CacheEntry, CacheIndex
from stepwell_metadata.service import MetadataService

#: The full name of the gRPC service, for health checks and reflection.
SERVICE_NAME = "stepwell.v1.Metadata"


class MetadataServicer(metadata_pb2_grpc.MetadataServicer):
    """Implements ``stepwell.v1.Metadata`` on top of a :class:`MetadataService`."""

    def __init__(self, service: MetadataService) -> None:
        self.service = service
        self.cache = CacheIndex(service.db)

    @rpc_errors
    def PutCacheEntry(self, request: pb.PutCacheEntryRequest, context: grpc.ServicerContext) -> pb.CacheEntry:
        e = request.entry
        stored = self.cache.put(
            CacheEntry(
                id=0,
                pipeline_name=e.pipeline_name,
                namespace=e.namespace,
                fingerprint=e.fingerprint,
                run_id=e.run_id,
                task_name=e.task_name,
                execution_id=e.execution_id,
                outputs=struct_to_dict(e.outputs),
                create_time=None,
            )
        )
        return cache_entry_to_proto(stored)

    @rpc_errors
    def LookupCacheEntry(
        self, request: pb.LookupCacheEntryRequest, context: grpc.ServicerContext
    ) -> pb.LookupCacheEntryResponse:
        found = self.cache.lookup(request.pipeline_name, request.namespace, request.fingerprint)
        if found is None:
            return pb.LookupCacheEntryResponse(found=False)
        return pb.LookupCacheEntryResponse(found=True, entry=cache_entry_to_proto(found))

    @rpc_errors
    def ListCacheEntries(
        self, request: pb.ListCacheEntriesRequest, context: grpc.ServicerContext
    ) -> pb.ListCacheEntriesResponse:
        entries = self.cache.list(request.pipeline_name, request.namespace, request.limit)
        return pb.ListCacheEntriesResponse(entries=[cache_entry_to_proto(e) for e in entries])

    @rpc_errors
    def DeleteCacheEntries(
        self, request: pb.DeleteCacheEntriesRequest, context: grpc.ServicerContext
    ) -> pb.DeleteCacheEntriesResponse:
        deleted = self.cache.delete(request.pipeline_name, request.namespace, request.fingerprint)
        return pb.DeleteCacheEntriesResponse(deleted=deleted)

    @rpc_errors
    def GetOrCreateContext(
        self, request: pb.GetOrCreateContextRequest, context: grpc.ServicerContext
    ) -> pb.Context:
        created = self.service.get_or_create_context(
            domain.NewContext(
                type=request.type,
                name=request.name,
                parent_id=request.parent_id or None,
                custom_properties=struct_to_dict(request.custom_properties),
            )
        )
        return context_to_proto(created)

    @rpc_errors
    def GetContext(
        self, request: pb.GetContextRequest, context: grpc.ServicerContext
    ) -> pb.Context:
        return context_to_proto(self.service.get_context(request.type, request.name))

    @rpc_errors
    def CreateExecution(
        self, request: pb.CreateExecutionRequest, context: grpc.ServicerContext
    ) -> pb.Execution:
        created = self.service.create_execution(new_execution_from_proto(request.execution, ""))
        return execution_to_proto(created)

    @rpc_errors
    def CreateExecutions(
        self, request: pb.CreateExecutionsRequest, context: grpc.ServicerContext
    ) -> pb.CreateExecutionsResponse:
        created = self.service.create_executions(
            [
                new_execution_from_proto(item.execution, f"executions[{i}].", item.input_events)
                for i, item in enumerate(request.executions)
            ]
        )
        return pb.CreateExecutionsResponse(executions=[execution_to_proto(e) for e in created])

    @rpc_errors
    def UpdateExecution(
        self, request: pb.UpdateExecutionRequest, context: grpc.ServicerContext
    ) -> pb.Execution:
        updated = self.service.update_execution(execution_update_from_proto(request, ""))
        return execution_to_proto(updated)

    @rpc_errors
    def FinishExecutions(
        self, request: pb.FinishExecutionsRequest, context: grpc.ServicerContext
    ) -> pb.FinishExecutionsResponse:
        results = self.service.finish_executions(
            [
                domain.FinishedExecution(
                    update=execution_update_from_proto(item.update, f"executions[{i}].update."),
                    outputs=[binding_from_proto(b) for b in item.outputs],
                    context_ids=list(item.context_ids),
                )
                for i, item in enumerate(request.executions)
            ]
        )
        return pb.FinishExecutionsResponse(
            results=[
                pb.RecordArtifactsResponse(artifacts=[artifact_to_proto(a) for a in artifacts])
                for artifacts in results
            ]
        )

    @rpc_errors
    def GetExecutions(
        self, request: pb.GetExecutionsRequest, context: grpc.ServicerContext
    ) -> pb.GetExecutionsResponse:
        found = self.service.get_executions(
            context_id=request.context_id or None, ids=list(request.ids)
        )
        return pb.GetExecutionsResponse(executions=[execution_to_proto(e) for e in found])

    @rpc_errors
    def RecordArtifacts(
        self, request: pb.RecordArtifactsRequest, context: grpc.ServicerContext
    ) -> pb.RecordArtifactsResponse:
        recorded = self.service.record_artifacts(
            execution_id=request.execution_id,
            event_type=event_type_from_proto(request.event_type, "event_type"),
            bindings=[binding_from_proto(b) for b in request.artifacts],
            context_ids=list(request.context_ids),
        )
        return pb.RecordArtifactsResponse(artifacts=[artifact_to_proto(a) for a in recorded])

    @rpc_errors
    def GetArtifacts(
        self, request: pb.GetArtifactsRequest, context: grpc.ServicerContext
    ) -> pb.GetArtifactsResponse:
        found = self.service.get_artifacts(
            context_id=request.context_id or None, ids=list(request.ids), uri=request.uri
        )
        return pb.GetArtifactsResponse(artifacts=[artifact_to_proto(a) for a in found])

    @rpc_errors
    def PutEvents(
        self, request: pb.PutEventsRequest, context: grpc.ServicerContext
    ) -> pb.PutEventsResponse:
        self.service.put_events(
            [
                domain.Event(
                    execution_id=e.execution_id,
                    artifact_id=e.artifact_id,
                    type=event_type_from_proto(e.type, f"events[{i}].type"),
                    path=e.path,
                    index=e.index,
                )
                for i, e in enumerate(request.events)
            ]
        )
        return pb.PutEventsResponse()

    @rpc_errors
    def GetEvents(
        self, request: pb.GetEventsRequest, context: grpc.ServicerContext
    ) -> pb.GetEventsResponse:
        found = self.service.get_events(
            execution_ids=list(request.execution_ids), artifact_ids=list(request.artifact_ids)
        )
        return pb.GetEventsResponse(events=[event_to_proto(e) for e in found])

    @rpc_errors
    def GetArtifactLineage(
        self, request: pb.GetArtifactLineageRequest, context: grpc.ServicerContext
    ) -> pb.ArtifactLineage:
        lineage = self.service.get_artifact_lineage(request.artifact_id)
        reply = pb.ArtifactLineage(
            artifact=artifact_to_proto(lineage.artifact),
            consumers=[execution_to_proto(e) for e in lineage.consumers],
            events=[event_to_proto(e) for e in lineage.events],
        )
        if lineage.producer is not None:
            reply.producer.CopyFrom(execution_to_proto(lineage.producer))
        return reply


# -- protobuf to domain ------------------------------------------------------------------


def state_from_proto(value: int, field: str) -> domain.ExecutionState | None:
    """The domain state for a proto ``Execution.State``; ``None`` for STATE_UNSPECIFIED."""
    if value == pb.Execution.STATE_UNSPECIFIED:
        return None
    try:
        return domain.ExecutionState[pb.Execution.State.Name(value)]  # type: ignore[arg-type]
    except (KeyError, ValueError):
        raise InvalidArgument(f"{field}: unknown execution state {value}") from None


def event_type_from_proto(value: int, field: str) -> domain.EventType:
    """The domain event type for a proto ``Event.Type``; INPUT or OUTPUT are required."""
    if value == pb.Event.INPUT:
        return domain.EventType.INPUT
    if value == pb.Event.OUTPUT:
        return domain.EventType.OUTPUT
    raise InvalidArgument(f"{field} must be INPUT or OUTPUT (got {value})")


def new_execution_from_proto(
    ex: pb.Execution, prefix: str, input_events: Iterable[pb.Event] = ()
) -> domain.NewExecution:
    """An execution to create; errors name its fields after ``prefix`` ("" or "executions[i].").

    ``input_events`` are INPUT events to record with it: an unset type means INPUT.
    """
    return domain.NewExecution(
        type=ex.type,
        name=ex.name,
        state=state_from_proto(ex.state, f"{prefix}execution.state"),
        context_ids=list(ex.context_ids),
        inputs=struct_to_dict(ex.inputs),
        outputs=struct_to_dict(ex.outputs),
        custom_properties=struct_to_dict(ex.custom_properties),
        input_events=[
            domain.Event(
                execution_id=e.execution_id,
                artifact_id=e.artifact_id,
                type=(
                    domain.EventType.INPUT
                    if e.type == pb.Event.TYPE_UNSPECIFIED
                    else event_type_from_proto(e.type, f"{prefix}input_events[{j}].type")
                ),
                path=e.path,
                index=e.index,
            )
            for j, e in enumerate(input_events)
        ],
    )


def execution_update_from_proto(
    update: pb.UpdateExecutionRequest, prefix: str
) -> domain.ExecutionUpdate:
    """Changes to an execution; errors name its fields after ``prefix`` ("" or
    "executions[i].update.").

    Outputs left unset are kept; set (even empty), they replace the execution's.
    """
    return domain.ExecutionUpdate(
        id=update.id,
        state=state_from_proto(update.state, f"{prefix}state"),
        outputs=struct_to_dict(update.outputs) if update.HasField("outputs") else None,
        custom_properties=struct_to_dict(update.custom_properties),
    )


def binding_from_proto(binding: pb.ArtifactAndEvent) -> domain.ArtifactBinding:
    """An artifact to record (or an existing one to link) and the name it is bound to."""
    return domain.ArtifactBinding(
        artifact=new_artifact_from_proto(binding.artifact), path=binding.path, index=binding.index
    )


def new_artifact_from_proto(artifact: pb.Artifact) -> domain.NewArtifact:
    """An artifact to record, from its proto (ids and times in it are the server's to set)."""
    return domain.NewArtifact(
        id=artifact.id,
        type=artifact.type,
        uri=artifact.uri,
        name=artifact.name,
        metadata=struct_to_dict(artifact.metadata),
        size_bytes=artifact.size_bytes,
        sha256=artifact.sha256,
        context_ids=list(artifact.context_ids),
    )


# -- domain to protobuf ------------------------------------------------------------------


def context_to_proto(ctx: domain.Context) -> pb.Context:
    """A context as its protobuf message."""
    return pb.Context(
        id=ctx.id,
        type=ctx.type,
        name=ctx.name,
        parent_id=ctx.parent_id or 0,
        custom_properties=dict_to_struct(ctx.custom_properties),
        create_time=timestamp(ctx.create_time),
    )


def execution_to_proto(ex: domain.Execution) -> pb.Execution:
    """An execution as its protobuf message."""
    return pb.Execution(
        id=ex.id,
        type=ex.type,
        name=ex.name,
        state=ex.state.value,
        context_ids=ex.context_ids,
        inputs=dict_to_struct(ex.inputs),
        outputs=dict_to_struct(ex.outputs),
        custom_properties=dict_to_struct(ex.custom_properties),
        create_time=timestamp(ex.create_time),
        update_time=timestamp(ex.update_time),
    )


def artifact_to_proto(art: domain.Artifact) -> pb.Artifact:
    """An artifact as its protobuf message."""
    return pb.Artifact(
        id=art.id,
        type=art.type,
        uri=art.uri,
        name=art.name,
        metadata=dict_to_struct(art.metadata),
        size_bytes=art.size_bytes,
        sha256=art.sha256,
        context_ids=art.context_ids,
        create_time=timestamp(art.create_time),
    )


def event_to_proto(ev: domain.Event) -> pb.Event:
    """An event as its protobuf message."""
    msg = pb.Event(
        execution_id=ev.execution_id,
        artifact_id=ev.artifact_id,
        type=ev.type.value,
        path=ev.path,
        index=ev.index,
    )
    if ev.create_time is not None:
        msg.create_time.CopyFrom(timestamp(ev.create_time))
    return msg


def cache_entry_to_proto(entry: CacheEntry) -> pb.CacheEntry:
    message = pb.CacheEntry(
        id=entry.id,
        pipeline_name=entry.pipeline_name,
        namespace=entry.namespace,
        fingerprint=entry.fingerprint,
        run_id=entry.run_id,
        task_name=entry.task_name,
        execution_id=entry.execution_id,
        outputs=dict_to_struct(entry.outputs),
    )
    if entry.create_time is not None:
        message.create_time.CopyFrom(timestamp(entry.create_time))
    return message
