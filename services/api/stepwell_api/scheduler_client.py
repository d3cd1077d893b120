"""The gRPC client the API service uses to reach the scheduler.

The channel is created lazily, on the first call, from the address the settings hold
*then*: the embedded stack starts every server on port 0 and only afterwards tells the
API service where the scheduler listens. If the address changes later, the next call
opens a channel to the new one.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable

import grpc
from google.protobuf import json_format, message_factory, struct_pb2

from stepwell.errors import FailedPrecondition, Unavailable, from_rpc_error
from stepwell.v1 import scheduler_pb2, scheduler_pb2_grpc
from stepwell_api.domain import Handover

log = logging.getLogger(__name__)

_MAX_MESSAGE = 64 * 1024 * 1024

#: Reconnect quickly once the scheduler is back: gRPC's default reconnect backoff grows
#: to two minutes, during which every call fails at once without trying.
_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", _MAX_MESSAGE),
    ("grpc.max_send_message_length", _MAX_MESSAGE),
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.min_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 2000),
]


def _struct(data: dict[str, object]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    json_format.ParseDict(data, message)
    return message


@functools.lru_cache(maxsize=128)
def _struct_bytes(data_json: str) -> bytes:
    message = struct_pb2.Struct()
    json_format.Parse(data_json, message)
    return bytes(message.SerializeToString())


class GrpcScheduler:
    """A :class:`~stepwell_api.service.SchedulerGateway` speaking ``stepwell.v1.Scheduler``.

    Failures are raised as :mod:`stepwell.errors` (UNAVAILABLE becomes
    :class:`~stepwell.errors.Unavailable`, and so on).
    """

    def __init__(self, address: Callable[[], str], timeout: float = 10.0) -> None:
        self._address = address
        self._timeout = timeout
        self._lock = threading.Lock()
        self._channel: grpc.Channel | None = None
        self._channel_address = ""
        self._stub: scheduler_pb2_grpc.SchedulerStub | None = None

    def _get_stub(self) -> scheduler_pb2_grpc.SchedulerStub:
        address = self._address()
        if not address:
            raise Unavailable("no scheduler address is configured yet")
        with self._lock:
            if self._stub is None or address != self._channel_address:
                if self._channel is not None:
                    self._channel.close()
                log.info("connecting to the scheduler at %s", address)
                self._channel = grpc.insecure_channel(address, options=_CHANNEL_OPTIONS)
                self._channel_address = address
                self._stub = scheduler_pb2_grpc.SchedulerStub(self._channel)
            return self._stub

    def start_run(self, handover: Handover) -> None:
        """Calls ``Scheduler.StartRun``."""
        request = scheduler_pb2.StartRunRequest(
            run_id=handover.run_id,
            parameters=_struct(handover.parameters),
            pipeline_root=handover.pipeline_root,
            namespace=handover.namespace,
        )
        if handover.pipeline_spec_json:  # the same spec text converts once
            request.pipeline_spec.MergeFromString(_struct_bytes(handover.pipeline_spec_json))
        else:
            request.pipeline_spec.CopyFrom(_struct(handover.pipeline_spec))
        try:
            self._get_stub().StartRun(request, timeout=self._timeout)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None

    def cancel_run(self, run_id: str) -> None:
        """Calls ``Scheduler.CancelRun``."""
        try:
            self._get_stub().CancelRun(scheduler_pb2.CancelRunRequest(run_id=run_id), timeout=self._timeout)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None

    def retry_run(self, run_id: str) -> None:
        """Calls ``Scheduler.RetryRun`` when the contract has it; otherwise
        :class:`FailedPrecondition` ("not supported yet")."""
        method = scheduler_pb2.DESCRIPTOR.services_by_name["Scheduler"].methods_by_name.get("RetryRun")
        if method is None:
            raise FailedPrecondition("retrying a run is not supported yet: the scheduler has no RetryRun")
        request_class = message_factory.GetMessageClass(method.input_type)
        response_class = message_factory.GetMessageClass(method.output_type)
        call = self._get_channel().unary_unary(
            "/stepwell.v1.Scheduler/RetryRun",
            request_serializer=request_class.SerializeToString,
            response_deserializer=response_class.FromString,
        )
        try:
            call(request_class(run_id=run_id), timeout=self._timeout)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None

    def _get_channel(self) -> grpc.Channel:
        self._get_stub()
        assert self._channel is not None
        return self._channel

    def close(self) -> None:
        """Closes the channel, if one was opened."""
        with self._lock:
            if self._channel is not None:
                self._channel.close()
            self._channel = None
            self._stub = None
            self._channel_address = ""
