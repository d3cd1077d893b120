"""Shared plumbing for Stepwell's services: gRPC servers, databases and settings."""

from stepwell.server.db import Database, make_engine, run_migrations_env, upgrade
from stepwell.server.rpc import (
    RunningServer,
    ServiceBinding,
    make_channel,
    rpc_errors,
    start_server,
)
from stepwell.server.settings import ServiceSettings

__all__ = [
    "Database",
    "RunningServer",
    "ServiceBinding",
    "ServiceSettings",
    "make_channel",
    "make_engine",
    "rpc_errors",
    "run_migrations_env",
    "start_server",
    "upgrade",
]
