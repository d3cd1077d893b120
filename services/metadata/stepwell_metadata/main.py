"""``stepwell-metadata``: runs the metadata service as its own process.

Prints ``stepwell-metadata listening on HOST:PORT`` once it serves (``--port 0`` picks a
free port) and stops cleanly on SIGTERM or SIGINT.
"""

from __future__ import annotations

import sys

import click
from pydantic import ValidationError

from stepwell.server.process import serve
from stepwell_metadata.app import MetadataApp
from stepwell_metadata.settings import MetadataSettings


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--port",
    type=int,
    default=None,
    help="gRPC port [default: $STEPWELL_METADATA_PORT or 8890; 0 picks a free one]",
)
@click.option(
    "--host", default=None, help="Address to bind [default: $STEPWELL_METADATA_HOST or 127.0.0.1]"
)
@click.option(
    "--database-url",
    default=None,
    help="SQLAlchemy URL [default: $STEPWELL_METADATA_DATABASE_URL, $STEPWELL_DATABASE_URL or SQLite under $STEPWELL_HOME]",
)
@click.option(
    "--log-level", default=None, help="Logging level [default: $STEPWELL_LOG_LEVEL or INFO]"
)
def cli(
    port: int | None, host: str | None, database_url: str | None, log_level: str | None
) -> None:
    """Serve Stepwell's metadata service (contexts, executions, artifacts, lineage) over gRPC."""
    try:
        settings = MetadataSettings()
    except ValidationError as err:
        raise click.ClickException(f"bad STEPWELL_* setting: {err}") from err
    app = MetadataApp(settings, database_url=database_url or "")

    def start() -> str:
        server = app.start(port=port, host=host)
        return f"{host or settings.metadata_host}:{server.port}"

    sys.exit(serve("metadata", app, start, log_level or settings.log_level))


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point of ``stepwell-metadata``."""
    cli.main(args=argv, prog_name="stepwell-metadata")


if __name__ == "__main__":
    main()
