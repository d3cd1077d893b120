"""Helpers shared by the metadata service's gRPC tests."""

from __future__ import annotations

import uuid
from typing import Any, TypeAlias

from google.protobuf import struct_pb2

from stepwell.v1 import metadata_pb2 as pb
from stepwell.v1 import metadata_pb2_grpc

Stub: TypeAlias = metadata_pb2_grpc.MetadataStub


def struct(**values: Any) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(values)
    return s


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def run_context(stub: Stub) -> pb.Context:
    return stub.GetOrCreateContext(
        pb.GetOrCreateContextRequest(type="system.PipelineRun", name=unique("run"))
    )
