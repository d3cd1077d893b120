"""Typed settings shared by the services, read from ``STEPWELL_*`` environment variables.

Each service subclasses :class:`ServiceSettings` to add its own fields and its own
default database. Settings are read once at start-up and passed down explicitly;
nothing deeper reads ``os.environ``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_home() -> Path:
    return Path("~/.stepwell").expanduser()


class ServiceSettings(BaseSettings):
    """Settings every service understands."""

    model_config = SettingsConfigDict(env_prefix="STEPWELL_", extra="ignore")

    #: Folder for embedded state (SQLite files, the artifact folder, logs).
    home: Path = Field(default_factory=default_home)
    #: SQLAlchemy URL; empty means a SQLite file under ``home`` named for the service.
    database_url: str = ""
    #: Where artifacts go: a folder, or ``s3://bucket/prefix`` / ``minio://bucket/prefix``.
    artifact_root: str = ""
    s3_endpoint: str = ""
    s3_access_key: str = ""
    s3_secret_key: str = ""
    s3_region: str = "us-east-1"
    s3_secure: bool = False
    api_address: str = "127.0.0.1:8887"
    scheduler_address: str = "127.0.0.1:8889"
    metadata_address: str = "127.0.0.1:8890"
    log_level: str = "INFO"

    def database_url_for(self, service: str) -> str:
        """The configured database URL, else ``sqlite:///<home>/<service>.db``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home.expanduser() / (service + '.db')}"

    def resolved_artifact_root(self) -> str:
        """The configured artifact root, else ``<home>/artifacts``."""
        return self.artifact_root or str(self.home.expanduser() / "artifacts")

    def storage_env(self) -> dict[str, str]:
        """The ``STEPWELL_*`` variables a task process needs to reach the artifact store."""
        env = {"STEPWELL_ARTIFACT_ROOT": self.resolved_artifact_root()}
        if self.s3_endpoint:
            env.update(
                STEPWELL_S3_ENDPOINT=self.s3_endpoint,
                STEPWELL_S3_ACCESS_KEY=self.s3_access_key,
                STEPWELL_S3_SECRET_KEY=self.s3_secret_key,
                STEPWELL_S3_REGION=self.s3_region,
                STEPWELL_S3_SECURE="true" if self.s3_secure else "false",
            )
        return env
