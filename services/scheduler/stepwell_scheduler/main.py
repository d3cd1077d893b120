"""``stepwell-scheduler``: runs the scheduler as its own process.

Prints ``stepwell-scheduler listening on HOST:PORT`` once it serves (``--port 0`` picks a
free port) and stops cleanly on SIGTERM or SIGINT.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from types import FrameType

import click
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from stepwell_scheduler.app import SchedulerApp
from stepwell_scheduler.settings import SchedulerSettings

log = logging.getLogger("stepwell_scheduler")


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
    logging.basicConfig(
        level=(log_level or settings.log_level).upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    stopping = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s; stopping", signal.Signals(signum).name)
        stopping.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)

    app = SchedulerApp(settings, database_url=database_url or "")
    try:
        server = app.start(port=port, host=host)
    except SQLAlchemyError as err:
        app.stop()
        url = app.database.engine.url.render_as_string(hide_password=True)
        raise click.ClickException(f"cannot prepare the database at {url}: {err}") from err
    except OSError as err:
        app.stop()
        raise click.ClickException(str(err)) from err
    click.echo(f"stepwell-scheduler listening on {host or settings.scheduler_host}:{server.port}")
    sys.stdout.flush()
    try:
        while not stopping.wait(0.5):
            pass
    finally:
        app.stop(grace=5.0)
        log.info("stopped")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point of ``stepwell-scheduler``."""
    cli.main(args=argv, prog_name="stepwell-scheduler")


if __name__ == "__main__":
    main()
