"""Reading pipeline packages: YAML, JSON, zip and tar.gz, as KFP's upload server does.

Shared by the API service (uploads) and :class:`stepwell.Client`
(``create_run_from_pipeline_package``, as ``kfp.Client`` accepts the same formats).

The file name picks the format (``.yaml``, ``.yml``, ``.json`` are read as text);
otherwise the bytes are sniffed: ``PK`` is a zip, ``1F 8B`` a tar.gz. Inside an
archive ``pipeline.yaml`` wins, else the single YAML/JSON file. Sizes are capped,
uncompressed archive members included, so a small zip bomb is refused too.
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import IO

from stepwell.errors import InvalidArgument
from stepwell.ir import PipelineSpecDoc, load_pipeline_spec

TEXT_SUFFIXES = (".yaml", ".yml", ".json")
DEFAULT_MAX_BYTES = 32 * 1024 * 1024


def read_package(content: bytes, filename: str = "", max_bytes: int = DEFAULT_MAX_BYTES) -> PipelineSpecDoc:
    """The checked spec in a package; :class:`InvalidArgument` says what is wrong."""
    if len(content) > max_bytes:
        raise InvalidArgument(f"the pipeline package is larger than the limit of {max_bytes} bytes")
    if not content.strip():
        raise InvalidArgument("the pipeline package is empty")
    name = filename.lower()
    if name.endswith(TEXT_SUFFIXES):
        return load_pipeline_spec(content)
    if content[:2] == b"PK":
        return load_pipeline_spec(_from_zip(content, max_bytes))
    if content[:2] == b"\x1f\x8b":
        return load_pipeline_spec(_from_tar_gz(content, max_bytes))
    if name and not name.endswith((".zip", ".tar.gz", ".tgz")):
        raise InvalidArgument(
            f"unexpected pipeline package {filename!r}: expected .yaml, .yml, .json, .zip or .tar.gz"
        )
    return load_pipeline_spec(content)


def _pick(names: list[str]) -> str:
    candidates = [n for n in names if n.lower().endswith(TEXT_SUFFIXES) and not n.endswith("/")]
    for candidate in candidates:
        if PurePosixPath(candidate).name == "pipeline.yaml":
            return candidate
    if len(candidates) != 1:
        raise InvalidArgument(
            f"the archive must hold pipeline.yaml or exactly one YAML/JSON file; it holds {len(candidates)}"
        )
    return candidates[0]


def _from_zip(content: bytes, max_bytes: int) -> bytes:
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            member = archive.getinfo(_pick(archive.namelist()))
            if member.file_size > max_bytes:
                raise InvalidArgument(f"{member.filename} in the zip is larger than {max_bytes} bytes")
            with archive.open(member) as handle:
                return _read_capped(handle, max_bytes, member.filename)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as err:
        raise InvalidArgument(f"the pipeline package is not a valid zip file: {err}") from None


def _from_tar_gz(content: bytes, max_bytes: int) -> bytes:
    try:
        with tarfile.open(fileobj=io.BytesIO(content), mode="r:gz") as archive:
            members = {m.name: m for m in archive.getmembers() if m.isfile()}
            member = members[_pick(list(members))]
            if member.size > max_bytes:
                raise InvalidArgument(f"{member.name} in the archive is larger than {max_bytes} bytes")
            handle = archive.extractfile(member)
            if handle is None:
                raise InvalidArgument(f"cannot read {member.name} from the archive")
            return _read_capped(handle, max_bytes, member.name)
    except (tarfile.TarError, gzip.BadGzipFile, EOFError, OSError) as err:
        raise InvalidArgument(f"the pipeline package is not a valid tar.gz file: {err}") from None


def _read_capped(handle: IO[bytes], max_bytes: int, name: str) -> bytes:
    data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise InvalidArgument(f"{name} is larger than {max_bytes} bytes")
    return bytes(data)


def read_package_file(path: str | os.PathLike[str], max_bytes: int = DEFAULT_MAX_BYTES) -> PipelineSpecDoc:
    """The checked spec in the package file at ``path`` (its name picks the format)."""
    try:
        with open(path, "rb") as handle:
            content = handle.read(max_bytes + 1)
    except OSError as err:
        raise InvalidArgument(f"cannot read pipeline package {str(path)!r}: {err}") from None
    return read_package(content, Path(path).name, max_bytes)
