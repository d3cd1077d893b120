"""``stepwell-api``: runs the API service on its own (the Helm chart and docker-compose use it).

Prints ``stepwell-api listening on HOST:PORT http HOST:HTTPPORT`` once it serves and stops
cleanly on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from stepwell.server.process import serve
from stepwell_api.app import ApiApp
from stepwell_api.settings import ApiSettings


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="stepwell-api",
        description="Stepwell's API service: gRPC stepwell.v1 services and the KFP v2beta1 REST API.",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help="gRPC port (default $STEPWELL_PORT or 8887; 0 = any free port)",
    )
    parser.add_argument(
        "--http-port",
        type=int,
        default=None,
        help="HTTP port (default $STEPWELL_HTTP_PORT or 8888; 0 = any free port)",
    )
    parser.add_argument(
        "--host", default=None, help="address to bind (default $STEPWELL_HOST or 127.0.0.1)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs until SIGTERM or SIGINT, then stops cleanly."""
    args = parse_args(argv)
    settings = ApiSettings()
    if args.host is not None:
        settings.host = args.host
    app = ApiApp(settings)

    def start() -> str:
        server = app.start(port=args.port, http_port=args.http_port)
        return f"{settings.host}:{server.port} http {settings.host}:{app.http_port}"

    return serve("api", app, start, settings.log_level)


if __name__ == "__main__":
    sys.exit(main())
