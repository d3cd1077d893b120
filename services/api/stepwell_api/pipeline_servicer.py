"""The ``stepwell.v1.PipelineService`` gRPC servicer: protobuf in, service calls, protobuf out."""

from __future__ import annotations

import grpc
from google.protobuf import empty_pb2, field_mask_pb2

from stepwell.errors import InvalidArgument
from stepwell.server import ServiceBinding, rpc_errors
from stepwell.v1 import pipeline_pb2, pipeline_pb2_grpc
from stepwell_api.convert import dict_to_struct, struct_to_dict
from stepwell_api.listing import ListRequest
from stepwell_api.pipelines import PipelineService
from stepwell_api.resources import (
    MetadataChange,
    NewPipeline,
    NewVersion,
    Pipeline,
    PipelineVersion,
)

EMPTY = empty_pb2.Empty()


def list_request(message: object) -> ListRequest:
    """The paging, sort and filter fields every KFP list request has."""
    return ListRequest(
        page_size=getattr(message, "page_size", 0),
        page_token=getattr(message, "page_token", ""),
        sort_by=getattr(message, "sort_by", ""),
        filter=getattr(message, "filter", ""),
    )


def pipeline_to_proto(pipeline: Pipeline) -> pipeline_pb2.Pipeline:
    message = pipeline_pb2.Pipeline(
        pipeline_id=pipeline.pipeline_id,
        name=pipeline.name,
        display_name=pipeline.display_name,
        description=pipeline.description,
        namespace=pipeline.namespace,
        tags=pipeline.tags,
    )
    message.created_at.FromDatetime(pipeline.created_at)
    return message


def version_to_proto(version: PipelineVersion) -> pipeline_pb2.PipelineVersion:
    message = pipeline_pb2.PipelineVersion(
        pipeline_id=version.pipeline_id,
        pipeline_version_id=version.pipeline_version_id,
        name=version.name,
        display_name=version.display_name,
        description=version.description,
        code_source_url=version.code_source_url,
        pipeline_spec=dict_to_struct(version.full_spec),
        tags=version.tags,
    )
    if version.package_url:
        message.package_url.pipeline_url = version.package_url
    message.created_at.FromDatetime(version.created_at)
    return message


def new_pipeline(message: pipeline_pb2.Pipeline) -> NewPipeline:
    return NewPipeline(
        name=message.name,
        display_name=message.display_name,
        description=message.description,
        namespace=message.namespace,
        tags=dict(message.tags),
    )


def new_version(message: pipeline_pb2.PipelineVersion, pipeline_id: str = "") -> NewVersion:
    return NewVersion(
        pipeline_id=pipeline_id or message.pipeline_id,
        name=message.name,
        display_name=message.display_name,
        description=message.description,
        tags=dict(message.tags),
        package_url=message.package_url.pipeline_url,
        code_source_url=message.code_source_url,
        spec=struct_to_dict(message.pipeline_spec) if message.pipeline_spec.fields else None,
    )


#: update_mask paths UpdatePipeline and UpdatePipelineVersion accept.
MUTABLE = ("display_name", "description", "tags")


def metadata_change(
    message: pipeline_pb2.Pipeline | pipeline_pb2.PipelineVersion,
    mask: field_mask_pb2.FieldMask | None,
    fixed: tuple[str, ...],
) -> MetadataChange:
    """The change an Update request asks for: the masked fields, or without a mask every
    mutable field that is set. ``fixed`` names immutable string fields to check."""
    if mask is not None:
        paths = set(mask.paths)
        unknown = sorted(paths - set(MUTABLE))
        if unknown:
            raise InvalidArgument(f"update_mask names fields that cannot change: {unknown}; only {list(MUTABLE)} can")
    else:
        paths = {name for name in MUTABLE if name != "tags" and getattr(message, name)}
        if message.tags:
            paths.add("tags")
    return MetadataChange(
        display_name=message.display_name if "display_name" in paths else None,
        description=message.description if "description" in paths else None,
        tags=dict(message.tags) if "tags" in paths else None,
        fixed={name: getattr(message, name) for name in fixed if getattr(message, name)},
    )


class PipelineServicer(pipeline_pb2_grpc.PipelineServiceServicer):
    """Serves ``stepwell.v1.PipelineService`` from a :class:`PipelineService`."""

    def __init__(self, service: PipelineService) -> None:
        self.service = service

    @rpc_errors
    def CreatePipeline(self, request: pipeline_pb2.CreatePipelineRequest, context: grpc.ServicerContext) -> pipeline_pb2.Pipeline:
        return pipeline_to_proto(self.service.create_pipeline(new_pipeline(request.pipeline)))

    @rpc_errors
    def GetPipeline(self, request: pipeline_pb2.GetPipelineRequest, context: grpc.ServicerContext) -> pipeline_pb2.Pipeline:
        return pipeline_to_proto(self.service.get_pipeline(request.pipeline_id))

    @rpc_errors
    def GetPipelineByName(self, request: pipeline_pb2.GetPipelineByNameRequest, context: grpc.ServicerContext) -> pipeline_pb2.Pipeline:
        return pipeline_to_proto(self.service.get_pipeline_by_name(request.name, request.namespace))

    @rpc_errors
    def ListPipelines(self, request: pipeline_pb2.ListPipelinesRequest, context: grpc.ServicerContext) -> pipeline_pb2.ListPipelinesResponse:
        items, token, total = self.service.list_pipelines(list_request(request), request.namespace)
        return pipeline_pb2.ListPipelinesResponse(
            pipelines=[pipeline_to_proto(p) for p in items], next_page_token=token, total_size=total
        )

    @rpc_errors
    def DeletePipeline(self, request: pipeline_pb2.DeletePipelineRequest, context: grpc.ServicerContext) -> empty_pb2.Empty:
        self.service.delete_pipeline(request.pipeline_id, cascade=request.cascade)
        return EMPTY

    @rpc_errors
    def CreatePipelineAndVersion(
        self, request: pipeline_pb2.CreatePipelineAndVersionRequest, context: grpc.ServicerContext
    ) -> pipeline_pb2.Pipeline:
        created = self.service.create_pipeline(new_pipeline(request.pipeline), new_version(request.pipeline_version))
        return pipeline_to_proto(created)

    @rpc_errors
    def CreatePipelineVersion(
        self, request: pipeline_pb2.CreatePipelineVersionRequest, context: grpc.ServicerContext
    ) -> pipeline_pb2.PipelineVersion:
        return version_to_proto(self.service.create_version(new_version(request.pipeline_version, request.pipeline_id)))

    @rpc_errors
    def GetPipelineVersion(
        self, request: pipeline_pb2.GetPipelineVersionRequest, context: grpc.ServicerContext
    ) -> pipeline_pb2.PipelineVersion:
        return version_to_proto(self.service.get_version(request.pipeline_version_id, request.pipeline_id))

    @rpc_errors
    def ListPipelineVersions(
        self, request: pipeline_pb2.ListPipelineVersionsRequest, context: grpc.ServicerContext
    ) -> pipeline_pb2.ListPipelineVersionsResponse:
        items, token, total = self.service.list_versions(request.pipeline_id, list_request(request))
        return pipeline_pb2.ListPipelineVersionsResponse(
            pipeline_versions=[version_to_proto(v) for v in items], next_page_token=token, total_size=total
        )

    @rpc_errors
    def DeletePipelineVersion(
        self, request: pipeline_pb2.DeletePipelineVersionRequest, context: grpc.ServicerContext
    ) -> empty_pb2.Empty:
        self.service.delete_version(request.pipeline_version_id, request.pipeline_id)
        return EMPTY

    @rpc_errors
    def UpdatePipeline(self, request: pipeline_pb2.UpdatePipelineRequest, context: grpc.ServicerContext) -> pipeline_pb2.Pipeline:
        mask = request.update_mask if request.HasField("update_mask") else None
        change = metadata_change(request.pipeline, mask, fixed=("name", "namespace"))
        return pipeline_to_proto(self.service.update_pipeline(request.pipeline.pipeline_id, change))

    @rpc_errors
    def UpdatePipelineVersion(
        self, request: pipeline_pb2.UpdatePipelineVersionRequest, context: grpc.ServicerContext
    ) -> pipeline_pb2.PipelineVersion:
        version = request.pipeline_version
        mask = request.update_mask if request.HasField("update_mask") else None
        change = metadata_change(version, mask, fixed=("name", "code_source_url"))
        if version.pipeline_spec.fields:
            raise InvalidArgument("pipeline_version.pipeline_spec cannot change; upload a new version instead")
        updated = self.service.update_version(version.pipeline_version_id, version.pipeline_id, change)
        return version_to_proto(updated)

    @rpc_errors
    def UploadPipeline(self, request: pipeline_pb2.UploadPipelineRequest, context: grpc.ServicerContext) -> pipeline_pb2.Pipeline:
        pipeline = NewPipeline(
            name=request.name,
            display_name=request.display_name,
            description=request.description,
            namespace=request.namespace,
            tags=dict(request.tags),
        )
        version = NewVersion(package=request.content, filename=request.filename, tags=dict(request.tags))
        return pipeline_to_proto(self.service.create_pipeline(pipeline, version))

    @rpc_errors
    def UploadPipelineVersion(
        self, request: pipeline_pb2.UploadPipelineVersionRequest, context: grpc.ServicerContext
    ) -> pipeline_pb2.PipelineVersion:
        version = NewVersion(
            pipeline_id=request.pipeline_id,
            name=request.name,
            display_name=request.display_name,
            description=request.description,
            tags=dict(request.tags),
            code_source_url=request.code_source_url,
            package=request.content,
            filename=request.filename,
        )
        return version_to_proto(self.service.create_version(version))


def pipeline_service_binding(service: PipelineService) -> ServiceBinding:
    return ServiceBinding(
        add_to_server=pipeline_pb2_grpc.add_PipelineServiceServicer_to_server,
        servicer=PipelineServicer(service),
        full_name="stepwell.v1.PipelineService",
    )
