"""Assembles the metadata service: database, migrations, service layer, servicer, server.

The standalone command (:mod:`stepwell_metadata.main`) and the embedded stack both use
:class:`MetadataApp`: either let it run its own gRPC server with :meth:`MetadataApp.start`,
or mount :meth:`MetadataApp.bindings` on a shared server with
:func:`stepwell.server.start_server`. :func:`create` is the ``stepwell.services`` entry
point the embedded stack (``stepwell.cli.embedded``) loads.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy import Engine, text

from stepwell.server import Database, RunningServer, ServiceBinding, start_server, upgrade
from stepwell.v1 import metadata_pb2_grpc
from stepwell_metadata.service import MetadataService
from stepwell_metadata.servicer import SERVICE_NAME, MetadataServicer
from stepwell_metadata.settings import MetadataSettings

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "alembic_version_metadata"
#: Postgres advisory-lock key serialising this service's migrations across processes.
_MIGRATION_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"stepwell-metadata-migrations").digest()[:8], "big", signed=True
)


def migrate(engine: Engine) -> None:
    """Upgrades the ``md_*`` tables to the newest migration; a no-op when they are current.

    On Postgres an advisory lock keeps replicas starting together from migrating at once.
    """
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


class MetadataApp:
    """The metadata service, ready to be served on its own or mounted in a shared server.

    The database is upgraded once, the first time :meth:`bindings` or :meth:`start` is called.
    """

    def __init__(self, settings: MetadataSettings | None = None, *, database_url: str = "") -> None:
        self.settings = settings or MetadataSettings()
        self.database = Database(database_url or self.settings.metadata_db_url())
        self.service = MetadataService(self.database)
        self.servicer = MetadataServicer(self.service)
        self.server: RunningServer | None = None
        self._migrated = False
        self._lock = threading.Lock()

    def migrate(self) -> None:
        """Brings the database up to date (idempotent)."""
        with self._lock:
            if not self._migrated:
                log.info(
                    "upgrading metadata tables in %s", self.database.engine.url.render_as_string()
                )
                migrate(self.database.engine)
                self._migrated = True

    def bindings(self) -> list[ServiceBinding]:
        """The gRPC services to mount on a server, after upgrading the database."""
        self.migrate()
        return [
            ServiceBinding(
                add_to_server=metadata_pb2_grpc.add_MetadataServicer_to_server,
                servicer=self.servicer,
                full_name=SERVICE_NAME,
            )
        ]

    def start(self, port: int | None = None, host: str | None = None) -> RunningServer:
        """Starts a gRPC server of its own (``port`` 0 picks a free one) and returns it."""
        if self.server is not None:
            raise RuntimeError("the metadata service is already started")
        self.server = start_server(
            self.bindings(),
            port=self.settings.metadata_port if port is None else port,
            host=host or self.settings.metadata_host,
            max_workers=self.settings.metadata_max_workers,
        )
        return self.server

    def stop(self, grace: float | None = 1.0) -> None:
        """Stops the server started by :meth:`start` (if any) and closes the database."""
        if self.server is not None:
            self.server.stop(grace)
            self.server = None
        self.database.dispose()

    def __enter__(self) -> MetadataApp:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def create(overrides: Mapping[str, Any] | None = None) -> MetadataApp:
    """The ``stepwell.services`` entry point ``metadata``: the embedded stack's factory.

    ``overrides`` are :class:`MetadataSettings` fields (``home``, ``database_url``, ...)
    that take precedence over ``STEPWELL_*`` variables; unknown keys are ignored.
    """
    return MetadataApp(MetadataSettings(**dict(overrides or {})))


def build(
    settings: MetadataSettings | None = None,
) -> tuple[list[ServiceBinding], Callable[[], None]]:
    """The service's bindings (database upgraded) and a function that releases its resources.

    For a process that serves several Stepwell services on one gRPC server::

        bindings, close = build(settings)
        server = start_server([*bindings, *other_bindings], port=0)
        ...
        server.stop(); close()
    """
    app = MetadataApp(settings)
    return app.bindings(), app.stop
