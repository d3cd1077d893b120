"""``stepwell-scheduler``: runs the scheduler as its own process.

Prints ``stepwell-scheduler listening on HOST:PORT`` once it serves (``--port 0`` picks a
free port) and stops cleanly on SIGTERM or SIGINT; running task processes are left alone
so a restarted scheduler adopts them.
"""

from __future__ import annotations

import sys

import click
from pydantic import ValidationError

from stepwell.server.process import serve
from stepwell_scheduler.app import SchedulerApp
from stepwell_scheduler.settings import SchedulerSettings


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--port",
    type=int,
    default=None,
    help="gRPC port [default: $STEPWELL_SCHEDULER_PORT or 8889; 0 picks a free one]",
)
@click.option(
    "--host", default=None, help="Address to bind [default: $STEPWELL_SCHEDULER_HOST or 127.0.0.1]"
)
@click.option(
    "--database-url",
    default=None,
    help="SQLAlchemy URL [default: $STEPWELL_SCHEDULER_DATABASE_URL, $STEPWELL_DATABASE_URL or SQLite under $STEPWELL_HOME]",
)
@click.option(
    "--log-level", default=None, help="Logging level [default: $STEPWELL_LOG_LEVEL or INFO]"
)
def cli(
    port: int | None, host: str | None, database_url: str | None, log_level: str | None
) -> None:
    """Serve Stepwell's scheduler (drives runs, one OS process per task) over gRPC."""
    try:
        settings = SchedulerSettings()
    except ValidationError as err:
        raise click.ClickException(f"bad STEPWELL_* setting: {err}") from err
    app = SchedulerApp(settings, database_url=database_url or "")

    def start() -> str:
        server = app.start(port=port, host=host)
        return f"{host or settings.scheduler_host}:{server.port}"

    sys.exit(serve("scheduler", app, start, log_level or settings.log_level))


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point of ``stepwell-scheduler``."""
    cli.main(args=argv, prog_name="stepwell-scheduler")


if __name__ == "__main__":
    main()
