"""Choosing an artifact store for a root or a URI, from explicit settings or the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping

from stepwell.storage.base import ArtifactStore, StorageError
from stepwell.storage.local import LocalStore
from stepwell.storage.s3 import SCHEMES as S3_SCHEMES
from stepwell.storage.s3 import S3Config, S3Store

#: Environment variables :func:`store_from_env` reads.
ENV_ROOT = "STEPWELL_ARTIFACT_ROOT"
ENV_S3 = {
    "endpoint": "STEPWELL_S3_ENDPOINT",
    "access_key": "STEPWELL_S3_ACCESS_KEY",
    "secret_key": "STEPWELL_S3_SECRET_KEY",
    "region": "STEPWELL_S3_REGION",
    "secure": "STEPWELL_S3_SECURE",
}


def is_s3_uri(uri: str) -> bool:
    """True for ``s3://`` and ``minio://`` URIs."""
    return uri.startswith(S3_SCHEMES)


def s3_config_from_env(env: Mapping[str, str] | None = None) -> S3Config:
    """The S3 settings in ``env`` (default ``os.environ``)."""
    env = os.environ if env is None else env
    return S3Config(
        endpoint=env.get(ENV_S3["endpoint"], ""),
        access_key=env.get(ENV_S3["access_key"], ""),
        secret_key=env.get(ENV_S3["secret_key"], ""),
        region=env.get(ENV_S3["region"], "") or "us-east-1",
        secure=env.get(ENV_S3["secure"], "false").strip().lower() in ("1", "true", "yes", "on"),
    )


def open_store(root: str, s3: S3Config | None = None) -> ArtifactStore:
    """The store for artifacts under ``root`` (a folder, ``file://``, ``s3://`` or ``minio://``).

    ``s3`` is required for S3 roots unless the ``STEPWELL_S3_*`` variables are set.
    """
    if is_s3_uri(root):
        return S3Store(s3 or s3_config_from_env())
    if "://" in root and not root.startswith("file://"):
        raise StorageError(f"unsupported artifact root {root!r}: use a folder, file://, s3:// or minio://")
    return LocalStore(root)


def store_from_env(env: Mapping[str, str] | None = None) -> ArtifactStore:
    """The store for ``$STEPWELL_ARTIFACT_ROOT`` configured from ``STEPWELL_S3_*``."""
    env = os.environ if env is None else env
    root = env.get(ENV_ROOT, "")
    return open_store(root or "/", s3_config_from_env(env) if is_s3_uri(root) else None)


class StoreRouter:
    """Opens (once) the right store for each URI: local paths and S3 URIs may be mixed."""

    def __init__(self, s3: S3Config | None = None) -> None:
        self._s3_config = s3
        self._local: ArtifactStore | None = None
        self._s3: ArtifactStore | None = None

    def for_uri(self, uri: str) -> ArtifactStore:
        """The store that holds ``uri``."""
        if is_s3_uri(uri):
            if self._s3 is None:
                self._s3 = S3Store(self._s3_config or s3_config_from_env())
            return self._s3
        if self._local is None:
            self._local = LocalStore()
        return self._local
