"""Running one service as its own OS process: what ``stepwell-api``, ``stepwell-scheduler``
and ``stepwell-metadata`` share.

Each binary builds its settings and its app, then hands over to :func:`serve`, which sets
up logging, starts the app, prints ``stepwell-<name> listening on HOST:PORT`` (tests and
supervisors wait for that line), and stops cleanly on SIGTERM or SIGINT.
"""

from __future__ import annotations

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
    print(f"stepwell-{name} listening on {where}", flush=True)
    try:
        while not stopping.wait(0.5):
            pass
    finally:
        app.stop(grace=5.0)
        log.info("stopped")
    return 0
