"""Where an artifact URI lives on the task's local disk.

The launcher downloads input artifacts to these paths and uploads output artifacts
from them; the in-task executor gives user code the same paths. The mapping follows
KFP's (``minio://b/k`` -> ``/minio/b/k``), rooted at ``$STEPWELL_LOCAL_ARTIFACT_ROOT``
when it is set so that a task on a laptop never writes outside its scratch folder.
"""

from __future__ import annotations

import os

LOCAL_ROOT_ENV = "STEPWELL_LOCAL_ARTIFACT_ROOT"
_REMOTE_PREFIXES = {"minio://": "minio", "s3://": "s3", "gs://": "gcs"}


def is_remote(uri: str) -> bool:
    """True when ``uri`` names an object in a remote store rather than a local path."""
    return any(uri.startswith(prefix) for prefix in _REMOTE_PREFIXES)


def local_path_for_uri(uri: str, local_root: str | None = None) -> str:
    """The local path of the artifact at ``uri``.

    Local URIs (absolute paths, ``file://``) map to themselves. Remote URIs map to
    ``<local_root>/<minio|s3|gcs>/<bucket>/<key>``; ``local_root`` defaults to
    ``$STEPWELL_LOCAL_ARTIFACT_ROOT``, else ``/`` as KFP does.
    """
    if uri.startswith("file://"):
        return uri[len("file://") :]
    for prefix, folder in _REMOTE_PREFIXES.items():
        if uri.startswith(prefix):
            root = local_root if local_root is not None else os.environ.get(LOCAL_ROOT_ENV, "/")
            return os.path.join(root, folder, uri[len(prefix) :])
    return uri
