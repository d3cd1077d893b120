"""The API service's HTTP side: a Starlette app served by uvicorn in a background thread.

For now it answers KFP's healthz (``GET /apis/v2beta1/healthz``); the KFP v2beta1 REST
surface, Stepwell's own REST for the UI and the UI's static files will be mounted on
the same app.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from importlib import metadata

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from stepwell.errors import StepwellError
from stepwell_api.settings import ApiSettings

log = logging.getLogger(__name__)


def _version() -> str:
    try:
        return metadata.version("stepwell")
    except metadata.PackageNotFoundError:
        return "unknown"


def build_http_app(settings: ApiSettings) -> Starlette:
    """The Starlette application of the API service's HTTP port."""
    tag_name = _version()

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "commit_sha": settings.commit_sha,
                "tag_name": tag_name,
                "multi_user": False,
                "pipeline_store": "database",
            }
        )

    async def stepwell_error(request: Request, exc: Exception) -> JSONResponse:
        status = exc.http_status if isinstance(exc, StepwellError) else 500
        return JSONResponse({"error": str(exc), "code": status, "message": str(exc)}, status_code=status)

    return Starlette(
        routes=[Route("/apis/v2beta1/healthz", healthz, methods=["GET"])],
        exception_handlers={StepwellError: stepwell_error},
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
