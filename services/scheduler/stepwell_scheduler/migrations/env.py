"""Alembic environment of the scheduler (its version table: ``alembic_version_scheduler``)."""

from stepwell.server import run_migrations_env
from stepwell_scheduler.models import Base

run_migrations_env(Base.metadata)
