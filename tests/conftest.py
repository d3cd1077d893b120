"""Fixtures every test can use: a real Postgres database and a real S3 server.

``scripts/test`` exports ``STEPWELL_TEST_DATABASE_URL`` (an admin URL of a Postgres
server it found or started) and ``STEPWELL_TEST_S3_ENDPOINT`` (a moto S3 server on
loopback). Run by hand without them, Postgres defaults to 127.0.0.1:5432 and an S3
server is started in this process.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

PG_ADMIN_URL = os.environ.get(
    "STEPWELL_TEST_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    """Admin URL of the test Postgres server; skips nothing: a missing server is an error."""
    return PG_ADMIN_URL


@pytest.fixture
def fresh_pg_url(pg_admin_url: str) -> Iterator[str]:
    """URL of a new, empty Postgres database, dropped after the test."""
    yield from _fresh_database(pg_admin_url)


def _fresh_database(admin_url: str) -> Iterator[str]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = "stepwell_t_" + uuid.uuid4().hex[:12]
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                {"n": name},
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@dataclass
class S3Server:
    """A running S3 server on loopback and the credentials to use it."""

    endpoint: str  # host:port
    access_key: str = "testing"
    secret_key: str = "testing"
    region: str = "us-east-1"

    def client(self):  # type: ignore[no-untyped-def]
        from minio import Minio

        return Minio(
            self.endpoint,
            access_key=self.access_key,
            secret_key=self.secret_key,
            secure=False,
            region=self.region,
        )

    def new_bucket(self) -> str:
        name = "sw-" + uuid.uuid4().hex[:12]
        self.client().make_bucket(name)
        return name


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A real S3 HTTP server (moto in server mode) on a loopback port."""
    endpoint = os.environ.get("STEPWELL_TEST_S3_ENDPOINT")
    if endpoint:
        yield S3Server(endpoint=endpoint.removeprefix("http://"))
        return
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield S3Server(endpoint=f"{host}:{port}")
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> str:
    """A new empty bucket on the test S3 server."""
    return s3_server.new_bucket()
