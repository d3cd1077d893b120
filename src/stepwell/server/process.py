"""Running one service as its own OS process: what ``stepwell-api``, ``stepwell-scheduler``
and ``stepwell-metadata`` share.

Each binary builds its settings and its app, then hands over to :func:`serve`, which sets
up logging, starts the app, prints ``stepwell-<name> listening on HOST:PORT`` (tests and
supervisors wait for that line), and stops cleanly on SIGTERM or SIGINT.
"""

from __future__ import annotations

import gc
import logging
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, Protocol


class StoppableApp(Protocol):
    def stop(self, grace: float = ...) -> None: ...


def setup_logging(level: str) -> None:
    """Logs to stderr at ``level``, with Alembic's chatter kept down."""
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)


def settle_heap() -> None:
    """Once a service has started: what it has loaded so far (modules, the ORM's and
    gRPC's caches) lives as long as the process, so it is moved out of the cyclic
    collector's view. Without this, each full collection walks every object of the
    start-up again: about 100 ms with the GIL held (measured in the embedded stack, about
    25 ms after the freeze), which the engine's thread waits out in the middle of a task
    start."""
    gc.collect()
    gc.freeze()


def serve(name: str, app: Any, start: Callable[[], str], log_level: str = "INFO") -> int:
    """Starts ``app`` via ``start`` (which returns ``HOST:PORT[ extra]``) and runs until a signal.

    Returns the process exit code: 0 after a clean stop, 1 when the service could not
    start (a port in use, a database it cannot reach), with a one-line reason on stderr.
    """
    from sqlalchemy.exc import SQLAlchemyError

    setup_logging(log_level)
    log = logging.getLogger(f"stepwell.{name}")
    stopping = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s; stopping", signal.Signals(signum).name)
        stopping.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        where = start()
    except (SQLAlchemyError, OSError) as err:
        print(f"stepwell-{name}: cannot start: {err}", file=sys.stderr, flush=True)
        app.stop()
        return 1
    # Listening now: said at once (the heap's settling takes the interpreter a while, and
    # a scheduler's engine is already at work).
    print(f"stepwell-{name} listening on {where}", flush=True)
    settle_heap()
    try:
        while not stopping.wait(0.5):
            pass
    finally:
        app.stop(grace=5.0)
        log.info("stopped")
    return 0


def service_command(
    name: str,
    summary: str,
    settings_factory: Callable[[], Any],
    app_factory: Callable[[Any, str], Any],
    default_port: int,
) -> Any:
    """The ``stepwell-<name>`` click command of a service with ``--port``, ``--host``,
    ``--database-url`` and ``--log-level``.

    ``settings_factory()`` reads the service's settings (a pydantic ``ValidationError`` is
    reported as a bad ``STEPWELL_*`` setting); ``app_factory(settings, database_url)``
    builds the app, whose ``start(port=, host=)`` returns the running server and whose
    settings carry ``<name>_host``.
    """
    import click
    from pydantic import ValidationError

    env = f"STEPWELL_{name.upper()}"

    @click.command(name=f"stepwell-{name}", help=summary, context_settings={"help_option_names": ["-h", "--help"]})
    @click.option("--port", type=int, default=None, help=f"gRPC port [default: ${env}_PORT or {default_port}; 0 picks a free one]")
    @click.option("--host", default=None, help=f"Address to bind [default: ${env}_HOST or 127.0.0.1]")
    @click.option(
        "--database-url",
        default=None,
        help=f"SQLAlchemy URL [default: ${env}_DATABASE_URL, $STEPWELL_DATABASE_URL or SQLite under $STEPWELL_HOME]",
    )
    @click.option("--log-level", default=None, help="Logging level [default: $STEPWELL_LOG_LEVEL or INFO]")
    def command(port: int | None, host: str | None, database_url: str | None, log_level: str | None) -> None:
        try:
            settings = settings_factory()
        except ValidationError as err:
            raise click.ClickException(f"bad STEPWELL_* setting: {err}") from err
        app = app_factory(settings, database_url or "")

        def start() -> str:
            server = app.start(port=port, host=host)
            return f"{host or getattr(settings, f'{name}_host')}:{server.port}"

        sys.exit(serve(name, app, start, log_level or settings.log_level))

    return command
