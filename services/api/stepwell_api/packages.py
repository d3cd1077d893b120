"""Pipeline packages on the API service: reading them (:mod:`stepwell.client.packages`,
shared with the client) and downloading a ``package_url``."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import PurePosixPath

from stepwell.client.packages import DEFAULT_MAX_BYTES, TEXT_SUFFIXES, read_package
from stepwell.errors import InvalidArgument

__all__ = ["DEFAULT_MAX_BYTES", "TEXT_SUFFIXES", "fetch_package", "read_package"]


def fetch_package(url: str, max_bytes: int = DEFAULT_MAX_BYTES, timeout: float = 30.0) -> tuple[bytes, str]:
    """Downloads a package from an http(s) ``package_url``; returns its bytes and file name."""
    if not url.startswith(("http://", "https://")):
        raise InvalidArgument(f"package_url.pipeline_url {url!r} must be an http:// or https:// URL")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data = response.read(max_bytes + 1)
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise InvalidArgument(f"cannot download package_url.pipeline_url {url!r}: {err}") from None
    if len(data) > max_bytes:
        raise InvalidArgument(f"the package at {url!r} is larger than {max_bytes} bytes")
    return data, PurePosixPath(url.split("?", 1)[0]).name
