"""Backends the CLI tests run against: SQLite + a folder, and Postgres + S3."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import S3Server, _fresh_database


@pytest.fixture(params=["sqlite-folder", "postgres-s3"])
def backend_env(request: pytest.FixtureRequest, tmp_path: Path, pg_admin_url: str) -> Iterator[dict[str, str]]:
    """Environment for a ``stepwell`` process: STEPWELL_HOME, and for postgres-s3 the DB and store."""
    env = {"STEPWELL_HOME": str(tmp_path / "home")}
    if request.param == "sqlite-folder":
        yield env
        return
    s3: S3Server = request.getfixturevalue("s3_server")
    bucket = s3.new_bucket()
    for url in _fresh_database(pg_admin_url):
        env.update(
            STEPWELL_DATABASE_URL=url,
            STEPWELL_ARTIFACT_ROOT=f"s3://{bucket}/root",
            STEPWELL_S3_ENDPOINT=s3.endpoint,
            STEPWELL_S3_ACCESS_KEY=s3.access_key,
            STEPWELL_S3_SECRET_KEY=s3.secret_key,
        )
        yield env
