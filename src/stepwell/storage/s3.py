"""An artifact store on S3 or MinIO through the ``minio`` client.

URIs are ``s3://bucket/key`` or ``minio://bucket/key`` (KFP's default root is
``minio://mlpipeline/v2/artifacts``); both schemes reach the same configured endpoint.
The ``minio`` package is imported only when an :class:`S3Store` is created.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any

from stepwell.storage.base import (
    ArtifactNotFound,
    ArtifactStore,
    ObjectInfo,
    StorageError,
)

SCHEMES = ("s3://", "minio://")
_MISSING_CODES = {"NoSuchKey", "NoSuchObject", "NotFound", "ResourceNotFound"}


@dataclass(frozen=True)
class S3Config:
    """Where the S3 endpoint is and how to sign requests to it."""

    endpoint: str
    access_key: str = ""
    secret_key: str = ""
    region: str = "us-east-1"
    secure: bool = False


def split_uri(uri: str) -> tuple[str, str, str]:
    """``(scheme, bucket, key)`` of an ``s3://`` or ``minio://`` URI."""
    for scheme in SCHEMES:
        if uri.startswith(scheme):
            rest = uri[len(scheme) :]
            bucket, _, key = rest.partition("/")
            if not bucket:
                raise StorageError(f"artifact URI {uri!r} names no bucket")
            return scheme, bucket, key
    raise StorageError(f"not an S3 URI (expected s3:// or minio://): {uri!r}")


class _HashingReader:
    """A file wrapper that hashes and counts what is read through it."""

    def __init__(self, f: Any) -> None:
        self._f = f
        self.sha = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data: bytes = self._f.read(n)
        self.sha.update(data)
        self.size += len(data)
        return data


class S3Store(ArtifactStore):
    """Artifacts as objects in S3 buckets."""

    def __init__(self, config: S3Config) -> None:
        from minio import Minio

        if not config.endpoint:
            raise StorageError("an S3 artifact store needs an endpoint (set STEPWELL_S3_ENDPOINT)")
        endpoint = config.endpoint
        secure = config.secure
        for prefix, is_secure in (("https://", True), ("http://", False)):
            if endpoint.startswith(prefix):
                endpoint, secure = endpoint[len(prefix) :], is_secure
        self.config = config
        self.client = Minio(
            endpoint.rstrip("/"),
            access_key=config.access_key or None,
            secret_key=config.secret_key or None,
            region=config.region or None,
            secure=secure,
        )

    def _not_found(self, err: Exception) -> bool:
        return getattr(err, "code", "") in _MISSING_CODES

    def put_file(self, local_path: str, uri: str) -> tuple[int, str]:
        _, bucket, key = split_uri(uri)
        if not os.path.isfile(local_path):
            raise ArtifactNotFound(f"nothing to upload: {local_path} is not a file")
        length = os.path.getsize(local_path)
        with open(local_path, "rb") as f:
            reader = _HashingReader(f)
            self.client.put_object(bucket, key, reader, length=length)  # type: ignore[arg-type]
        return reader.size, reader.sha.hexdigest()

    def get_file(self, uri: str, local_path: str) -> None:
        from minio.error import S3Error

        _, bucket, key = split_uri(uri)
        os.makedirs(os.path.dirname(local_path) or ".", exist_ok=True)
        try:
            self.client.fget_object(bucket, key, local_path)
        except S3Error as err:
            if self._not_found(err):
                raise ArtifactNotFound(f"no artifact at {uri}") from None
            raise StorageError(f"could not download {uri}: {err}") from err

    def list(self, prefix: str) -> list[str]:
        from minio.error import S3Error

        scheme, bucket, key = split_uri(prefix)
        try:
            objects = self.client.list_objects(bucket, prefix=key, recursive=True)
            names = [obj.object_name for obj in objects if obj.object_name]
        except S3Error as err:
            if err.code == "NoSuchBucket":
                return []
            raise StorageError(f"could not list {prefix}: {err}") from err
        return sorted(f"{scheme}{bucket}/{name}" for name in names)

    def stat(self, uri: str) -> ObjectInfo:
        from minio.error import S3Error

        _scheme, bucket, key = split_uri(uri)
        if key and not key.endswith("/"):
            try:
                found = self.client.stat_object(bucket, key)
                return ObjectInfo(uri=uri, size=int(found.size or 0))
            except S3Error as err:
                if not self._not_found(err) and err.code != "NoSuchBucket":
                    raise StorageError(f"could not stat {uri}: {err}") from err
        dir_key = key.rstrip("/") + "/" if key else ""
        try:
            objects = list(self.client.list_objects(bucket, prefix=dir_key, recursive=True))
        except S3Error as err:
            if err.code == "NoSuchBucket":
                raise ArtifactNotFound(f"no artifact at {uri} (no bucket {bucket!r})") from None
            raise StorageError(f"could not stat {uri}: {err}") from err
        if not objects:
            raise ArtifactNotFound(f"no artifact at {uri}")
        return ObjectInfo(uri=uri, size=sum(int(o.size or 0) for o in objects), is_dir=True)

    def delete(self, uri: str) -> None:
        from minio.deleteobjects import DeleteObject

        _, bucket, key = split_uri(uri)
        if key:
            self.client.remove_object(bucket, key)
        members = self.list(uri.rstrip("/") + "/")
        if members:
            keys = [DeleteObject(split_uri(m)[2]) for m in members]
            errors = list(self.client.remove_objects(bucket, keys))
            if errors:
                raise StorageError(f"could not delete {len(errors)} object(s) under {uri}")
