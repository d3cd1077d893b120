"""The artifact-store interface shared by every backend, and digest helpers.

A store addresses objects by URI. A URI may name a single object (a file) or a
"directory": every object whose key starts with ``<uri>/``. Uploads return the size
and SHA-256 of what was stored; for a directory these are the total size and the
digest of its manifest (see :func:`directory_digest`).
"""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass

from stepwell.errors import NotFound, StepwellError

CHUNK = 1024 * 1024


class StorageError(StepwellError):
    """The artifact store refused or failed an operation."""


class ArtifactNotFound(NotFound):
    """No object (and no directory) exists at the URI."""


@dataclass(frozen=True)
class ObjectInfo:
    """What a store knows about one URI."""

    uri: str
    size: int
    is_dir: bool = False


def file_digest(path: str | os.PathLike[str]) -> tuple[int, str]:
    """Size and hex SHA-256 of the file at ``path``."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def directory_digest(entries: Iterable[tuple[str, int, str]]) -> tuple[int, str]:
    """Total size and a SHA-256 over ``(relative path, size, sha256)`` entries.

    The digest hashes one ``<sha256>  <size>  <relpath>\\n`` line per file in path order,
    so the same tree always gives the same digest wherever it is stored.
    """
    digest = hashlib.sha256()
    total = 0
    for rel, size, sha in sorted(entries):
        digest.update(f"{sha}  {size}  {rel}\n".encode())
        total += size
    return total, digest.hexdigest()


def walk_files(root: str) -> list[tuple[str, str]]:
    """``(relative posix path, absolute path)`` for every file under the folder ``root``."""
    found: list[tuple[str, str]] = []
    for folder, _dirs, files in os.walk(root):
        for name in files:
            full = os.path.join(folder, name)
            found.append((os.path.relpath(full, root).replace(os.sep, "/"), full))
    return sorted(found)


class ArtifactStore(ABC):
    """Puts and gets artifacts (files or folders) by URI."""

    @abstractmethod
    def put_file(self, local_path: str, uri: str) -> tuple[int, str]:
        """Stores the file ``local_path`` at ``uri``; returns ``(size, sha256)``."""

    @abstractmethod
    def get_file(self, uri: str, local_path: str) -> None:
        """Writes the object at ``uri`` to ``local_path`` (parent folders are created)."""

    @abstractmethod
    def list(self, prefix: str) -> list[str]:
        """URIs of every object whose URI starts with ``prefix``, sorted."""

    @abstractmethod
    def stat(self, uri: str) -> ObjectInfo:
        """Size of the object at ``uri``, or of the directory under it; :class:`ArtifactNotFound` if neither."""

    @abstractmethod
    def delete(self, uri: str) -> None:
        """Removes the object or directory at ``uri``; a missing one is not an error."""

    def exists(self, uri: str) -> bool:
        """True when an object or a directory exists at ``uri``."""
        try:
            self.stat(uri)
        except ArtifactNotFound:
            return False
        return True

    def put_dir(self, local_dir: str, uri: str) -> tuple[int, str]:
        """Stores every file under ``local_dir`` below ``uri``; returns total size and manifest digest."""
        entries = []
        for rel, full in walk_files(local_dir):
            size, sha = self.put_file(full, join_uri(uri, rel))
            entries.append((rel, size, sha))
        return directory_digest(entries)

    def get_dir(self, uri: str, local_dir: str) -> None:
        """Writes every object below ``uri`` into ``local_dir``, keeping relative paths."""
        prefix = uri.rstrip("/") + "/"
        members = self.list(prefix)
        if not members:
            raise ArtifactNotFound(f"no artifact directory at {uri}")
        for member in members:
            rel = member[len(prefix) :]
            self.get_file(member, os.path.join(local_dir, *rel.split("/")))

    def put(self, local_path: str, uri: str) -> tuple[int, str]:
        """Stores a file or a folder at ``uri``; returns ``(size, sha256)``."""
        if os.path.isdir(local_path):
            return self.put_dir(local_path, uri)
        if not os.path.exists(local_path):
            raise ArtifactNotFound(f"nothing to upload: {local_path} does not exist")
        return self.put_file(local_path, uri)

    def get(self, uri: str, local_path: str) -> None:
        """Fetches the object or directory at ``uri`` to ``local_path``."""
        info = self.stat(uri)
        if info.is_dir:
            self.get_dir(uri, local_path)
        else:
            self.get_file(uri, local_path)


def join_uri(base: str, rel: str) -> str:
    """``base`` and a relative posix path joined with exactly one ``/``."""
    return base.rstrip("/") + "/" + rel.lstrip("/")
