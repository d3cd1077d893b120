"""``stepwell-api``: runs the API service on its own (the Helm chart and docker-compose use it)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from stepwell_api.app import ApiApp
from stepwell_api.settings import ApiSettings


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="stepwell-api",
        description="Stepwell's API service: gRPC stepwell.v1 services and the KFP v2beta1 REST API.",
    )
    parser.add_argument("--port", type=int, default=None, help="gRPC port (default $STEPWELL_PORT or 8887; 0 = any free port)")
    parser.add_argument("--http-port", type=int, default=None, help="HTTP port (default $STEPWELL_HTTP_PORT or 8888; 0 = any free port)")
    parser.add_argument("--host", default=None, help="address to bind (default $STEPWELL_HOST or 127.0.0.1)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs until SIGTERM or SIGINT, then stops cleanly."""
    args = parse_args(argv)
    settings = ApiSettings()
    if args.host is not None:
        settings.host = args.host
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    stopping = threading.Event()

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    app = ApiApp(settings)
    try:
        server = app.start(port=args.port, http_port=args.http_port)
    except OSError as err:
        print(f"stepwell-api: {err}", file=sys.stderr, flush=True)
        app.stop()
        return 1
    print(
        f"stepwell-api listening on {settings.host}:{server.port} http {settings.host}:{app.http_port}",
        flush=True,
    )
    try:
        while not stopping.wait(0.5):
            pass
    finally:
        logging.getLogger(__name__).info("stopping")
        app.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
