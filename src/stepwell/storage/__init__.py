"""Artifact stores: a local folder or an S3/MinIO bucket, behind one interface.

``open_store(root)`` picks the backend from the root's scheme; ``store_from_env()`` reads
``STEPWELL_ARTIFACT_ROOT`` and ``STEPWELL_S3_*`` (what a task process is given). The
``minio`` client is imported only when an S3 store is opened.
"""

from stepwell.storage.base import (
    ArtifactNotFound,
    ArtifactStore,
    ObjectInfo,
    StorageError,
    directory_digest,
    file_digest,
    join_uri,
)
from stepwell.storage.factory import (
    StoreRouter,
    is_s3_uri,
    open_store,
    s3_config_from_env,
    store_from_env,
)
from stepwell.storage.local import LocalStore
from stepwell.storage.s3 import S3Config, S3Store, split_uri

__all__ = [
    "ArtifactNotFound",
    "ArtifactStore",
    "LocalStore",
    "ObjectInfo",
    "S3Config",
    "S3Store",
    "StorageError",
    "StoreRouter",
    "directory_digest",
    "file_digest",
    "is_s3_uri",
    "join_uri",
    "open_store",
    "s3_config_from_env",
    "split_uri",
    "store_from_env",
]
