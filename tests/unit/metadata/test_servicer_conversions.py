"""Conversions at the protobuf edge of the metadata service (no server, no database)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from stepwell.errors import InvalidArgument
from stepwell.v1 import metadata_pb2 as pb
from stepwell_metadata import domain
from stepwell_metadata.servicer import (
    artifact_to_proto,
    dict_to_struct,
    event_type_from_proto,
    execution_to_proto,
    state_from_proto,
    struct_to_dict,
)

NOW = datetime(2025, 5, 1, 12, 0, 0, 123000, tzinfo=timezone.utc)


def test_struct_round_trip() -> None:
    value = {"s": "x", "n": 1.5, "b": True, "l": [1.0, "two"], "o": {"k": None}}
    assert struct_to_dict(dict_to_struct(value)) == value


def test_states() -> None:
    assert state_from_proto(pb.Execution.STATE_UNSPECIFIED, "state") is None
    for state in domain.ExecutionState:
        assert state_from_proto(pb.Execution.State.Value(state.value), "state") is state
    with pytest.raises(InvalidArgument, match=r"execution\.state"):
        state_from_proto(99, "execution.state")


def test_event_types() -> None:
    assert event_type_from_proto(pb.Event.INPUT, "t") is domain.EventType.INPUT
    assert event_type_from_proto(pb.Event.OUTPUT, "t") is domain.EventType.OUTPUT
    for bad in (pb.Event.TYPE_UNSPECIFIED, 7):
        with pytest.raises(InvalidArgument, match=r"events\[2\]\.type must be INPUT or OUTPUT"):
            event_type_from_proto(bad, "events[2].type")


def test_domain_to_proto() -> None:
    ex = execution_to_proto(
        domain.Execution(
            id=7,
            type="system.DAGExecution",
            name="root",
            state=domain.ExecutionState.CANCELED,
            context_ids=[1, 2],
            inputs={"a": 1.0},
            outputs={},
            custom_properties={"iteration_count": 3.0},
            create_time=NOW,
            update_time=NOW,
        )
    )
    assert ex.state == pb.Execution.CANCELED
    assert list(ex.context_ids) == [1, 2]
    assert ex.create_time.ToDatetime(tzinfo=timezone.utc) == NOW
    art = artifact_to_proto(
        domain.Artifact(
            id=3,
            type="system.Model",
            uri="s3://b/k",
            name="model",
            metadata={"framework": "sklearn"},
            size_bytes=10,
            sha256="",
            context_ids=[],
            create_time=NOW,
        )
    )
    assert art.metadata["framework"] == "sklearn"
    assert art.size_bytes == 10
