"""Plain Python ⇄ the protobuf well-known types (Struct, Value, Timestamp).

Servicers and clients convert between protobuf messages and plain dataclasses at the
edges; these are the conversions they all share.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from google.protobuf import json_format, struct_pb2, timestamp_pb2


def struct_to_dict(message: struct_pb2.Struct) -> dict[str, Any]:
    """A ``Struct`` as a plain dict (numbers come back as floats)."""
    return dict(json_format.MessageToDict(message)) if message.fields else {}


def dict_to_struct(data: dict[str, Any]) -> struct_pb2.Struct:
    """A plain JSON dict as a ``Struct``."""
    message = struct_pb2.Struct()
    json_format.ParseDict(data, message)
    return message


def value_to_python(value: struct_pb2.Value) -> Any:
    """A ``Value`` as a plain JSON value; an unset value is None."""
    if value.WhichOneof("kind") is None:
        return None
    return json_format.MessageToDict(value)


def python_to_value(data: Any) -> struct_pb2.Value:
    """A plain JSON value as a ``Value``."""
    message = struct_pb2.Value()
    json_format.ParseDict(data, message)
    return message


def timestamp_to_datetime(stamp: timestamp_pb2.Timestamp) -> datetime | None:
    """A ``Timestamp`` as an aware UTC datetime; the zero timestamp (unset) is None."""
    if stamp.seconds == 0 and stamp.nanos == 0:
        return None
    return stamp.ToDatetime(tzinfo=timezone.utc)


def datetime_to_timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    """A datetime as a ``Timestamp``."""
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp
