"""The API service's HTTP side: a Starlette app served by uvicorn in a background thread.

It serves KFP's v2beta1 REST surface: healthz and the two multipart uploads as plain
handlers (as KFP's own server does), and every other route through the generic
:mod:`~stepwell_api.gateway`, which reads them from the protos' ``google.api.http``
annotations and calls the same servicers as the gRPC server.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from collections.abc import AsyncGenerator, Iterable
from importlib import metadata
from typing import Any

import grpc
import uvicorn
from google.protobuf import descriptor, json_format
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from stepwell.v1 import pipeline_pb2
from stepwell_api.gateway import Gateway, GatewayAbort, GatewayContext, routes_for
from stepwell_api.settings import ApiSettings

log = logging.getLogger(__name__)

PREFIX = "/apis/v2beta1"


def _version() -> str:
    try:
        return metadata.version("stepwell")
    except metadata.PackageNotFoundError:
        return "unknown"


def upload_error(code: grpc.StatusCode, message: str) -> JSONResponse:
    """The upload handlers' error body: KFP's v1beta1 ``Error`` JSON (plus code and message)."""
    from stepwell_api.gateway import HTTP_STATUS

    body = {"error_message": message, "error_details": message, "code": code.value[0], "message": message}
    return JSONResponse(body, status_code=HTTP_STATUS.get(code, 500))


async def _read_upload(request: Request, limit: int) -> tuple[bytes, str]:
    """The bytes and file name of the multipart part ``uploadfile``."""
    from stepwell_api.gateway import read_body

    body = await read_body(request, limit + 64 * 1024)

    async def stream() -> AsyncGenerator[bytes, None]:
        yield body

    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise GatewayAbort(grpc.StatusCode.INVALID_ARGUMENT, "the upload must be multipart/form-data with a part 'uploadfile'")
    try:
        form = await MultiPartParser(request.headers, stream(), max_files=4, max_fields=16).parse()
    except (MultiPartException, ValueError) as err:
        raise GatewayAbort(grpc.StatusCode.INVALID_ARGUMENT, f"malformed multipart body: {err}") from None
    try:
        part = form.get("uploadfile")
        if not isinstance(part, UploadFile):
            raise GatewayAbort(grpc.StatusCode.INVALID_ARGUMENT, "the multipart part 'uploadfile' is required")
        content = await part.read()
        return content, part.filename or ""
    finally:
        await form.close()


def _tags(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    try:
        tags = json.loads(text)
    except json.JSONDecodeError as err:
        raise GatewayAbort(grpc.StatusCode.INVALID_ARGUMENT, f"tags is not a JSON object: {err}") from None
    if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
        raise GatewayAbort(grpc.StatusCode.INVALID_ARGUMENT, "tags must be a JSON object of strings")
    return {str(k): v for k, v in tags.items()}


def build_http_app(
    settings: ApiSettings, services: Iterable[tuple[descriptor.ServiceDescriptor, Any]] = ()
) -> Starlette:
    """The Starlette application of the API service's HTTP port.

    ``services`` pairs each gRPC service descriptor with its servicer; their annotated
    RPCs become the REST routes.
    """
    services = list(services)
    tag_name = _version()
    gateway = Gateway(routes_for(services), max_body_bytes=settings.max_request_bytes)
    pipelines = next(
        (servicer for svc, servicer in services if svc.full_name == "stepwell.v1.PipelineService"), None
    )

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "commit_sha": settings.commit_sha,
                "tag_name": tag_name,
                "multi_user": False,
                "pipeline_store": "database",
            }
        )

    async def upload(request: Request) -> JSONResponse:
        if pipelines is None:
            return upload_error(grpc.StatusCode.UNIMPLEMENTED, "pipeline uploads are not served here")
        query = request.query_params
        try:
            content, filename = await _read_upload(request, settings.max_upload_bytes)
            if request.url.path.endswith("/upload_version"):
                version = pipeline_pb2.UploadPipelineVersionRequest(
                    content=content, filename=filename, pipeline_id=query.get("pipelineid", ""),
                    name=query.get("name", ""), display_name=query.get("display_name", ""),
                    description=query.get("description", ""), tags=_tags(query.get("tags")),
                    code_source_url=query.get("code_source_url", ""),
                )
                reply = await run_in_threadpool(pipelines.UploadPipelineVersion, version, GatewayContext(request))
            else:
                pipeline = pipeline_pb2.UploadPipelineRequest(
                    content=content, filename=filename, name=query.get("name", ""),
                    display_name=query.get("display_name", ""), description=query.get("description", ""),
                    namespace=query.get("namespace", ""), tags=_tags(query.get("tags")),
                )
                reply = await run_in_threadpool(pipelines.UploadPipeline, pipeline, GatewayContext(request))
        except GatewayAbort as abort:
            return upload_error(abort.code, abort.message)
        return JSONResponse(json_format.MessageToDict(reply, preserving_proto_field_name=True))

    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.error("HTTP %s %s failed", request.method, request.url.path, exc_info=exc)
        message = "internal error; see the server log"
        return JSONResponse({"error": message, "code": 13, "message": message, "details": []}, status_code=500)

    return Starlette(
        routes=[
            Route(f"{PREFIX}/healthz", healthz, methods=["GET"]),
            Route(f"{PREFIX}/pipelines/upload", upload, methods=["POST"]),
            Route(f"{PREFIX}/pipelines/upload_version", upload, methods=["POST"]),
            Route(PREFIX + "/{path:path}", gateway.__call__, methods=["GET", "POST", "DELETE", "PATCH", "PUT"]),
        ],
        exception_handlers={Exception: internal_error},
    )

class _ThreadServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the process that embeds it."""

    def install_signal_handlers(self) -> None:  # uvicorn < 0.29
        return None


class HttpServer:
    """Serves an ASGI app with uvicorn in a daemon thread, on a socket bound up front.

    Binding the socket here makes port 0 work: :attr:`port` is known as soon as
    :meth:`start` returns. uvicorn installs no signal handlers off the main thread.
    """

    def __init__(self, app: Starlette, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.host = host
        self.requested_port = port
        self.port = 0
        self._server: _ThreadServer | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    def start(self, timeout: float = 15.0) -> int:
        """Binds, starts serving and waits until uvicorn is accepting; returns the port."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.requested_port))
        except OSError as err:
            sock.close()
            raise OSError(f"could not bind the HTTP server to {self.host}:{self.requested_port}: {err}") from err
        sock.listen(128)
        sock.setblocking(False)
        self._socket = sock
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            lifespan="off",
            access_log=False,
            timeout_graceful_shutdown=2,
        )
        server = _ThreadServer(config)
        self._server = server
        self._thread = threading.Thread(
            target=self._serve, args=(server, sock), name="stepwell-api-http", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"the HTTP server on {self.host}:{self.port} stopped while starting")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the HTTP server on {self.host}:{self.port} did not start in {timeout:.0f}s")
            time.sleep(0.01)
        log.info("HTTP server listening on %s:%d", self.host, self.port)
        return self.port

    @staticmethod
    def _serve(server: _ThreadServer, sock: socket.socket) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(server.serve(sockets=[sock]))
        except Exception:
            log.exception("the HTTP server failed")
        finally:
            loop.close()

    def stop(self, timeout: float = 5.0) -> None:
        """Asks uvicorn to finish and waits for its thread."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("the HTTP server did not stop within %.0fs", timeout)
                if self._server is not None:
                    self._server.force_exit = True
                self._thread.join(1.0)
        if self._socket is not None:
            self._socket.close()
        self._server = None
        self._thread = None
        self._socket = None
