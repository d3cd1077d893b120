"""Settings of the metadata service, read from ``STEPWELL_*`` environment variables."""

from __future__ import annotations

from stepwell.server import ServiceSettings


class MetadataSettings(ServiceSettings):
    """What the metadata service reads at start-up.

    Beyond :class:`~stepwell.server.ServiceSettings` (``STEPWELL_HOME``,
    ``STEPWELL_DATABASE_URL``, ``STEPWELL_LOG_LEVEL``, ...):

    * ``STEPWELL_METADATA_DATABASE_URL`` — this service's database, overriding
      ``STEPWELL_DATABASE_URL`` (default: ``sqlite:///$STEPWELL_HOME/metadata.db``);
    * ``STEPWELL_METADATA_HOST`` / ``STEPWELL_METADATA_PORT`` — where the gRPC server
      listens (default ``127.0.0.1:8890``; use ``0.0.0.0`` in a container);
    * ``STEPWELL_METADATA_MAX_WORKERS`` — gRPC worker threads (default 32).
    """

    metadata_database_url: str = ""
    metadata_host: str = "127.0.0.1"
    metadata_port: int = 8890
    metadata_max_workers: int = 32

    def metadata_db_url(self) -> str:
        """The database this service uses."""
        return self.metadata_database_url or self.database_url_for("metadata")
