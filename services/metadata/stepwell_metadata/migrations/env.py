"""Alembic environment of the metadata service (its version table: ``alembic_version_metadata``)."""

from stepwell.server import run_migrations_env
from stepwell_metadata.models import Base

run_migrations_env(Base.metadata)
