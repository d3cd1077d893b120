"""Calls to a gRPC service that runs in this same process, made without the network.

``stepwell run`` and ``stepwell server`` run the API, scheduler and metadata services in
one process (:mod:`stepwell.cli.embedded`). Each still listens on loopback for clients
outside the process, but a call from one of them to another went through the whole gRPC
stack and back into the same interpreter: the caller's thread blocks, a server thread
takes the request, and the two pass the interpreter lock back and forth. That cost
1 to 2 ms per call when the process was idle and 5 to 14 ms when it was busy (the scheduler
records every task start and end in the metadata service).

:func:`~stepwell.server.rpc.start_server` registers the unary methods of the services it
serves here under its port, when it listens on loopback or a wildcard address;
:func:`~stepwell.server.rpc.make_channel` returns a :class:`LocalChannel` for an address
on loopback. A unary call on it whose port a server of this process serves runs the
servicer's method in the caller's thread; that holds for any caller of ``make_channel``
in the process, the SDK's :class:`~stepwell.client.Client` beside an embedded stack too
(``stepwell run`` follows its run that way). The contract
is the one the network carries: the request and the answer are serialised and parsed
again (neither side sees the other's objects), a servicer's ``context.abort`` becomes a
:class:`grpc.RpcError` with the same code and details, and an exception that escapes a
servicer becomes UNKNOWN, as the gRPC server answers it. Streaming methods, and calls to
a port no server of this process serves (any more), go over a real channel.

What differs: a call's ``timeout`` is not enforced (the servicer runs to its end in the
caller's thread; ``context.time_remaining()`` reports it), the server's thread pool
does not bound how many such calls run at once, and stopping the server does not wait
for such calls in flight.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

import grpc

#: Hosts whose ports are this machine's loopback: an address with one of them and a port
#: a server of this process serves is that server.
LOOPBACK = frozenset({"127.0.0.1", "localhost", "[::1]", "::1", "0.0.0.0", "[::]"})

log = logging.getLogger(__name__)

_lock = threading.Lock()
#: port -> the generic handlers of the services a server of this process serves there.
_served: dict[int, tuple[grpc.GenericRpcHandler, ...]] = {}


class _Details(NamedTuple):
    """What a generic handler is asked to serve (``grpc.HandlerCallDetails``)."""

    method: str
    invocation_metadata: tuple[tuple[str, str], ...]


class HandlerCollector:
    """Takes the place of a ``grpc.Server`` while a generated ``add_*_to_server`` function
    registers a servicer, and keeps its handlers for :func:`serve_locally`."""

    def __init__(self) -> None:
        self.handlers: list[grpc.GenericRpcHandler] = []

    def add_generic_rpc_handlers(self, handlers: Iterable[grpc.GenericRpcHandler]) -> None:
        self.handlers.extend(handlers)

    def add_registered_method_handlers(self, service_name: str, method_handlers: dict[str, Any]) -> None:
        """The generated code registers the same methods here too; the generic handlers
        serve them."""


def serve_locally(port: int, handlers: Sequence[grpc.GenericRpcHandler]) -> None:
    """Makes the services of ``handlers`` callable in-process at ``port``."""
    with _lock:
        _served[port] = tuple(handlers)


def withdraw(port: int) -> None:
    """Ends :func:`serve_locally` for ``port`` (its server is stopping)."""
    with _lock:
        _served.pop(port, None)


def loopback_port(address: str) -> int | None:
    """The port of a loopback ``host:port`` address; None for any other address."""
    host, sep, port = address.rpartition(":")
    if not sep or host not in LOOPBACK or not port.isdigit():
        return None
    return int(port)


def _handler(port: int, method: str, metadata: tuple[tuple[str, str], ...]) -> grpc.RpcMethodHandler | None:
    with _lock:
        handlers = _served.get(port, ())
    details = _Details(method, metadata)
    for generic in handlers:
        found = generic.service(details)  # type: ignore[arg-type]
        if found is not None:
            return found
    return None


class LocalRpcError(grpc.RpcError, grpc.Call):  # type: ignore[misc]
    """A failed in-process call: what a failed call over the network raises."""

    def __init__(self, code: grpc.StatusCode, details: str, trailing: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(f"{code.name}: {details}")
        self._code, self._details, self._trailing = code, details, trailing

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._trailing

    def initial_metadata(self) -> tuple[tuple[str, str], ...]:
        return ()

    def debug_error_string(self) -> str:
        return f"in-process call failed: {self._code.name}: {self._details}"

    def is_active(self) -> bool:
        return False

    def time_remaining(self) -> float | None:
        return None

    def cancel(self) -> bool:
        return False

    def add_callback(self, callback: Callable[[], None]) -> bool:
        return False


class _Aborted(Exception):
    """Raised by :meth:`_Context.abort`, as the gRPC server's context raises."""


class _Context(grpc.ServicerContext):  # type: ignore[misc]
    """The servicer's view of an in-process call."""

    def __init__(self, metadata: tuple[tuple[str, str], ...], timeout: float | None) -> None:
        self._metadata = metadata
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self.status: grpc.StatusCode | None = None
        self.message = ""
        self.trailing: tuple[tuple[str, str], ...] = ()

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def peer(self) -> str:
        return "in-process"

    def peer_identities(self) -> None:
        return None

    def peer_identity_key(self) -> None:
        return None

    def auth_context(self) -> dict[str, Any]:
        return {}

    def set_compression(self, compression: Any) -> None:
        pass

    def send_initial_metadata(self, initial_metadata: Any) -> None:
        pass

    def set_trailing_metadata(self, trailing_metadata: Any) -> None:
        self.trailing = tuple(trailing_metadata)

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        return self.trailing

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        if code == grpc.StatusCode.OK:
            raise ValueError("abort() with StatusCode.OK")
        self.status, self.message = code, details
        raise _Aborted(details)

    def abort_with_status(self, status: Any) -> None:
        self.set_trailing_metadata(status.trailing_metadata or ())
        self.abort(status.code, status.details)

    def set_code(self, code: grpc.StatusCode) -> None:
        self.status = code

    def code(self) -> grpc.StatusCode | None:
        return self.status

    def set_details(self, details: str) -> None:
        self.message = details

    def details(self) -> str:
        return self.message

    def disable_next_message_compression(self) -> None:
        pass

    def is_active(self) -> bool:
        return True

    def time_remaining(self) -> float | None:
        return None if self._deadline is None else max(0.0, self._deadline - time.monotonic())

    def cancel(self) -> None:
        pass

    def add_callback(self, callback: Callable[[], None]) -> bool:
        return False


class _UnaryUnary(grpc.UnaryUnaryMultiCallable):  # type: ignore[misc]
    """One unary method of a :class:`LocalChannel`."""

    def __init__(
        self,
        channel: LocalChannel,
        method: str,
        serializer: Callable[[Any], bytes] | None,
        deserializer: Callable[[bytes], Any] | None,
        registered: bool,
    ) -> None:
        self._channel, self._method = channel, method
        self._serializer, self._deserializer, self._registered = serializer, deserializer, registered

    def _remote(self) -> grpc.UnaryUnaryMultiCallable:
        return self._channel.remote().unary_unary(
            self._method,
            request_serializer=self._serializer,
            response_deserializer=self._deserializer,
            _registered_method=self._registered,
        )

    def __call__(self, request: Any, timeout: float | None = None, metadata: Any = None, **kwargs: Any) -> Any:
        if self._channel.closed:
            raise ValueError("Cannot invoke RPC on closed channel!")  # as grpc's own channel
        found = _handler(self._channel.port, self._method, tuple(metadata or ()))
        if found is None or found.unary_unary is None:
            return self._remote()(request, timeout=timeout, metadata=metadata, **kwargs)
        payload = self._serializer(request) if self._serializer else request
        try:
            parsed = found.request_deserializer(payload) if found.request_deserializer else payload
        except Exception as err:
            raise LocalRpcError(grpc.StatusCode.INTERNAL, "Exception deserializing request!") from err
        context = _Context(tuple(metadata or ()), timeout)
        try:
            answer = found.unary_unary(parsed, context)
        except _Aborted:
            raise LocalRpcError(context.status or grpc.StatusCode.UNKNOWN, context.message, context.trailing) from None
        except Exception as err:
            # What the gRPC server does when a servicer raises: logs it, and answers with
            # the code the servicer set, else UNKNOWN.
            log.exception("Exception calling application: %s", err)
            code = context.status if context.status not in (None, grpc.StatusCode.OK) else grpc.StatusCode.UNKNOWN
            raise LocalRpcError(code, context.message or f"Exception calling application: {err}") from err
        if context.status not in (None, grpc.StatusCode.OK):
            raise LocalRpcError(context.status, context.message, context.trailing)
        try:
            data = found.response_serializer(answer) if found.response_serializer else answer
        except Exception as err:
            raise LocalRpcError(grpc.StatusCode.INTERNAL, "Failed to serialize response!") from err
        return self._deserializer(data) if self._deserializer else data

    def with_call(self, request: Any, timeout: float | None = None, metadata: Any = None, **kwargs: Any) -> Any:
        return self._remote().with_call(request, timeout=timeout, metadata=metadata, **kwargs)

    def future(self, request: Any, timeout: float | None = None, metadata: Any = None, **kwargs: Any) -> Any:
        return self._remote().future(request, timeout=timeout, metadata=metadata, **kwargs)


class LocalChannel(grpc.Channel):  # type: ignore[misc]
    """A channel to a loopback address: unary calls to a server of this process run in
    the caller's thread; everything else goes over a real channel, opened on first use."""

    def __init__(self, address: str, port: int, connect: Callable[[str], grpc.Channel]) -> None:
        self.address, self.port = address, port
        self._connect = connect
        self._lock = threading.Lock()
        self._channel: grpc.Channel | None = None
        #: Set by :meth:`close`: later calls fail, as on a closed gRPC channel.
        self.closed = False

    def remote(self) -> grpc.Channel:
        """The real channel to the address."""
        with self._lock:
            if self._channel is None:
                self._channel = self._connect(self.address)
            return self._channel

    def unary_unary(
        self,
        method: str,
        request_serializer: Callable[[Any], bytes] | None = None,
        response_deserializer: Callable[[bytes], Any] | None = None,
        _registered_method: bool = False,
    ) -> grpc.UnaryUnaryMultiCallable:
        return _UnaryUnary(self, method, request_serializer, response_deserializer, _registered_method)

    def unary_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self.remote().unary_stream(method, *args, **kwargs)

    def stream_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self.remote().stream_unary(method, *args, **kwargs)

    def stream_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self.remote().stream_stream(method, *args, **kwargs)

    def subscribe(self, callback: Callable[..., Any], try_to_connect: bool = False) -> None:
        self.remote().subscribe(callback, try_to_connect)

    def unsubscribe(self, callback: Callable[..., Any]) -> None:
        self.remote().unsubscribe(callback)

    def close(self) -> None:
        with self._lock:
            self.closed = True
            channel, self._channel = self._channel, None
        if channel is not None:
            channel.close()

    def __enter__(self) -> LocalChannel:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
