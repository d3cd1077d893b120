"""Building blocks every Stepwell gRPC service uses: the server with health checking
and reflection, and one place that turns exceptions into gRPC status codes."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Iterator
from concurrent import futures
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from stepwell.errors import StepwellError, grpc_code_for
from stepwell.server import local

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


def rpc_errors(method: F) -> F:
    """Decorates a servicer method so Stepwell errors become their gRPC status codes.

    A :class:`StepwellError` aborts with its code and message. Anything else is logged
    with its traceback and answered as INTERNAL with a generic text, so internals never
    leak to callers. Works for unary and server-streaming methods.
    """

    @functools.wraps(method)
    def unary(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(self, request, context)
        except StepwellError as err:
            context.abort(grpc_code_for(err), str(err))
        except Exception as err:
            _abort_unexpected(method, err, context)

    @functools.wraps(method)
    def streaming(self: Any, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        try:
            yield from method(self, request, context)
        except StepwellError as err:
            context.abort(grpc_code_for(err), str(err))
        except Exception as err:
            _abort_unexpected(method, err, context)

    import inspect

    return streaming if inspect.isgeneratorfunction(method) else unary  # type: ignore[return-value]


def _abort_unexpected(method: Callable[..., Any], err: Exception, context: grpc.ServicerContext) -> None:
    # A database connection that died under the call (SQLAlchemy sets
    # ``connection_invalidated`` and replaces the pool's connections): worth retrying.
    if getattr(err, "connection_invalidated", False):
        log.warning("%s lost its database connection: %s", method.__qualname__, err)
        context.abort(grpc.StatusCode.UNAVAILABLE, "the database connection was lost; retry the call")
    log.exception("%s failed", method.__qualname__)
    context.abort(grpc.StatusCode.INTERNAL, f"internal error in {method.__name__}; see the server log")


@dataclass
class ServiceBinding:
    """A servicer together with the generated function that registers it and its full name."""

    add_to_server: Callable[[Any, grpc.Server], None]
    servicer: Any
    full_name: str  # e.g. "stepwell.v1.RunService"


@dataclass
class RunningServer:
    """A started gRPC server and the port it is bound to."""

    server: grpc.Server
    port: int
    health: health.HealthServicer

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self, grace: float | None = 1.0) -> None:
        local.withdraw(self.port)
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()


def start_server(
    bindings: Iterable[ServiceBinding],
    port: int = 0,
    host: str = "127.0.0.1",
    max_workers: int = 32,
) -> RunningServer:
    """Starts a gRPC server for ``bindings`` with health checking and reflection.

    ``port`` 0 picks a free port; the chosen one is in the result. Every bound
    service reports SERVING on the standard health service.
    """
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc"),
        options=[
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
            ("grpc.so_reuseport", 0),
        ],
    )
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [health.SERVICE_NAME, reflection.SERVICE_NAME]
    in_process = local.HandlerCollector()
    for binding in bindings:
        binding.add_to_server(binding.servicer, server)
        binding.add_to_server(binding.servicer, in_process)  # type: ignore[arg-type]
        names.append(binding.full_name)
        health_servicer.set(binding.full_name, health_pb2.HealthCheckResponse.SERVING)
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(names, server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"could not bind a gRPC server to {host}:{port}; is the port in use?")
    server.start()
    # Callers in this process reach these services without the network (see .local):
    # what they address on loopback at this port is this server, unless it listens
    # elsewhere only (loopback's port may then be another process's).
    if host in local.LOOPBACK:
        local.serve_locally(bound, in_process.handlers)
    log.info("gRPC server for %s listening on %s:%d", ", ".join(names[2:]), host, bound)
    return RunningServer(server=server, port=bound, health=health_servicer)


def make_channel(address: str) -> grpc.Channel:
    """An insecure channel to a peer service at ``host:port``. For a loopback address it
    is a :class:`~stepwell.server.local.LocalChannel`: unary calls to a server of this
    process (the embedded stack) run in the caller's thread, the rest go over the network."""
    port = local.loopback_port(address)
    if port is not None:
        return local.LocalChannel(address, port, _network_channel)
    return _network_channel(address)


def _network_channel(address: str) -> grpc.Channel:
    return grpc.insecure_channel(
        address,
        options=[
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
        ],
    )
