"""An artifact store in a local folder: URIs are absolute paths or ``file://`` URLs."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile

from stepwell.storage.base import (
    CHUNK,
    ArtifactNotFound,
    ArtifactStore,
    ObjectInfo,
    StorageError,
    directory_digest,
    file_digest,
    walk_files,
)


def local_path(uri: str) -> str:
    """The filesystem path a local URI names."""
    path = uri[len("file://") :] if uri.startswith("file://") else uri
    if not os.path.isabs(path):
        raise StorageError(f"local artifact URIs must be absolute paths or file:// URLs; got {uri!r}")
    return path


class LocalStore(ArtifactStore):
    """Artifacts as files in a folder; storing a file at its own path only computes its digest."""

    def __init__(self, root: str = "") -> None:
        self.root = local_path(root) if root else ""

    def put_file(self, local_path_: str, uri: str) -> tuple[int, str]:
        dest = local_path(uri)
        if not os.path.isfile(local_path_):
            raise ArtifactNotFound(f"nothing to upload: {local_path_} is not a file")
        if _same(local_path_, dest):
            return file_digest(dest)
        os.makedirs(os.path.dirname(dest) or "/", exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(dest), prefix=".upload-")
        try:
            with open(local_path_, "rb") as src, os.fdopen(fd, "wb") as out:
                while chunk := src.read(CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
            os.replace(tmp, dest)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return size, digest.hexdigest()

    def put_dir(self, local_dir: str, uri: str) -> tuple[int, str]:
        dest = local_path(uri)
        if _same(local_dir, dest):
            return directory_digest((rel, *file_digest(full)) for rel, full in walk_files(dest))
        return super().put_dir(local_dir, uri)

    def get_file(self, uri: str, local_path_: str) -> None:
        src = local_path(uri)
        if not os.path.isfile(src):
            raise ArtifactNotFound(f"no artifact at {uri}")
        if _same(src, local_path_):
            return
        os.makedirs(os.path.dirname(local_path_) or ".", exist_ok=True)
        shutil.copyfile(src, local_path_)

    def get_dir(self, uri: str, local_dir: str) -> None:
        src = local_path(uri)
        if not os.path.isdir(src):
            raise ArtifactNotFound(f"no artifact directory at {uri}")
        if _same(src, local_dir):
            return
        shutil.copytree(src, local_dir, dirs_exist_ok=True)

    def list(self, prefix: str) -> list[str]:
        path = local_path(prefix)
        scheme = "file://" if prefix.startswith("file://") else ""
        folder = path if path.endswith("/") else os.path.dirname(path)
        if not os.path.isdir(folder):
            return []
        found = []
        for _rel, full in walk_files(folder):
            if full.startswith(path):
                found.append(scheme + full)
        return sorted(found)

    def stat(self, uri: str) -> ObjectInfo:
        path = local_path(uri)
        if os.path.isfile(path):
            return ObjectInfo(uri=uri, size=os.path.getsize(path))
        if os.path.isdir(path):
            size = sum(os.path.getsize(full) for _rel, full in walk_files(path))
            return ObjectInfo(uri=uri, size=size, is_dir=True)
        raise ArtifactNotFound(f"no artifact at {uri}")

    def delete(self, uri: str) -> None:
        path = local_path(uri)
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.lexists(path):
            os.unlink(path)


def _same(a: str, b: str) -> bool:
    return os.path.abspath(a) == os.path.abspath(b)
