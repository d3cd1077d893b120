"""Alembic environment of the API service (its version table: ``alembic_version_api``)."""

from stepwell.server import run_migrations_env
from stepwell_api.models import Base

run_migrations_env(Base.metadata)
