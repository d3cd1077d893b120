"""Assembles the scheduler: database, migrations, engine, executor, peers, servicer, server.

Standalone (:mod:`stepwell_scheduler.main`) or embedded::

    app = SchedulerApp(SchedulerSettings(home=..., api_address=..., metadata_address=...))
    server = app.start(0)          # or: start_server(app.bindings() + others, port)
    ...
    app.stop()

Peer stubs (API, metadata) are opened lazily from ``app.settings`` on first use, so an
embedded stack may fill in their addresses after starting its servers.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy import Engine as SqlEngine
from sqlalchemy import event, text

from stepwell.server import Database, RunningServer, ServiceBinding, start_server, upgrade
from stepwell.v1 import scheduler_pb2_grpc
from stepwell_scheduler.api_client import ApiClient, StatusReporter
from stepwell_scheduler.engine import Engine
from stepwell_scheduler.executors import Executor, LocalExecutor
from stepwell_scheduler.executors.local import INLINE_MODULES
from stepwell_scheduler.metadata_client import MetadataClient
from stepwell_scheduler.service import ChangeBoard, SchedulerService
from stepwell_scheduler.servicer import SERVICE_NAME, SchedulerServicer
from stepwell_scheduler.settings import SchedulerSettings

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "alembic_version_scheduler"
_MIGRATION_LOCK_KEY = int.from_bytes(hashlib.sha256(b"stepwell-scheduler-migrations").digest()[:8], "big", signed=True)


def migrate(engine: SqlEngine) -> None:
    """Upgrades the ``sched_*`` tables to the newest migration (advisory-locked on Postgres)."""
    if engine.dialect.name != "postgresql":
        upgrade(engine, MIGRATIONS_DIR, VERSION_TABLE)
        return
    with engine.connect() as lock_conn:
        lock_conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
        try:
            upgrade(engine, MIGRATIONS_DIR, VERSION_TABLE)
        finally:
            lock_conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _MIGRATION_LOCK_KEY})
            lock_conn.commit()


def _end_stalled_transactions(engine: SqlEngine, lease_seconds: float) -> None:
    """On Postgres, lets the server end a transaction left idle longer than a lease: a
    stalled scheduler (stopped, swapped out) must not keep the row locks that another
    scheduler needs to take its runs over. The engine's transactions never wait on
    anything but the database."""
    if engine.dialect.name != "postgresql":
        return
    millis = max(1000, int(lease_seconds * 1000))

    @event.listens_for(engine, "connect")
    def _set_timeout(dbapi_connection: Any, connection_record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"SET idle_in_transaction_session_timeout = {millis}")
        finally:
            cursor.close()
        dbapi_connection.commit()


class SchedulerApp:
    """The scheduler service, ready to serve on its own or to be mounted in a shared server."""

    def __init__(
        self,
        settings: SchedulerSettings | None = None,
        *,
        database_url: str = "",
        executor: Executor | None = None,
    ) -> None:
        self.settings = settings or SchedulerSettings()
        # First, before any database or gRPC client exists: the local executor starts its
        # fork server (a fresh interpreter) here.
        self.executor = executor or LocalExecutor(
            start_method=self.settings.local_start_method,
            preload=["minio"] if self.settings.s3_endpoint else [],
            inline_modules=INLINE_MODULES if self.settings.local_inline_python else (),
        )
        self.database = Database(database_url or self.settings.scheduler_db_url())
        _end_stalled_transactions(self.database.engine, self.settings.scheduler_lease_seconds)
        self.changes = ChangeBoard()
        self.metadata = MetadataClient(lambda: self.settings.metadata_address)
        self.api = ApiClient(lambda: self.settings.api_address)
        self.engine = Engine(self.database, self.settings, self.executor, self.metadata, self._changed)
        self.service = SchedulerService(
            self.database, self.engine, self.settings.resolved_artifact_root(), self.changes
        )
        self.engine.on_rows = self.service.note_changed
        self.reporter = StatusReporter(self.api, self.service.find_status, self.settings.report_retry_seconds)
        self.servicer = SchedulerServicer(self.service)
        self.server: RunningServer | None = None
        self._started = False
        self._lock = threading.Lock()

    def set_api_address(self, address: str) -> None:
        """Points status reports at the API service (the embedded stack learns it last)."""
        self.settings.api_address = address
        for run_id in self.service.unfinished_runs():
            self.reporter.mark(run_id)

    def set_metadata_address(self, address: str) -> None:
        """Points metadata recording at the metadata service."""
        self.settings.metadata_address = address

    def _changed(self, run_id: str) -> None:
        self.changes.bump(run_id)
        self.reporter.mark(run_id)

    def run_engine(self) -> None:
        """Upgrades the database, resumes unfinished runs and starts the engine (idempotent)."""
        with self._lock:
            if self._started:
                return
            log.info("upgrading scheduler tables in %s", self.database.engine.url.render_as_string())
            migrate(self.database.engine)
            self.settings.resolved_work_dir().mkdir(parents=True, exist_ok=True)
            self.reporter.start()
            self.engine.start()
            self._started = True

    def bindings(self) -> list[ServiceBinding]:
        """The gRPC services to mount on a server; starts the engine first."""
        self.run_engine()
        return [
            ServiceBinding(
                add_to_server=scheduler_pb2_grpc.add_SchedulerServicer_to_server,
                servicer=self.servicer,
                full_name=SERVICE_NAME,
            )
        ]

    def start(self, port: int | None = None, host: str | None = None) -> RunningServer:
        """Starts the engine and a gRPC server of its own (``port`` 0 picks a free one)."""
        if self.server is not None:
            raise RuntimeError("the scheduler is already started")
        self.server = start_server(
            self.bindings(),
            port=self.settings.scheduler_port if port is None else port,
            host=host or self.settings.scheduler_host,
        )
        return self.server

    def stop(self, grace: float | None = 1.0, kill_tasks: bool = False) -> None:
        """Stops the server and the engine; running task processes are left to finish
        (a restarted scheduler adopts them) unless ``kill_tasks``."""
        if self.server is not None:
            self.server.stop(grace)
            self.server = None
        if self._started:
            self.engine.stop(kill_tasks=kill_tasks)
            self.reporter.stop()
            self._started = False
        else:
            self.executor.shutdown()  # the fork server, started with the executor
        self.metadata.close()
        self.api.close()
        self.database.dispose()

    def __enter__(self) -> SchedulerApp:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def create(overrides: Mapping[str, Any] | None = None) -> SchedulerApp:
    """The ``stepwell.services`` entry point ``scheduler``: the embedded stack's factory.

    ``overrides`` are :class:`SchedulerSettings` fields (``home``, ``database_url``,
    ``metadata_address``, ...) that take precedence over ``STEPWELL_*`` variables.
    """
    return SchedulerApp(SchedulerSettings(**dict(overrides or {})))
