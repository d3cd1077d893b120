"""Round trips through LocalStore (a tmp folder) and S3Store (a real moto S3 server)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from stepwell.storage import (
    ArtifactNotFound,
    ArtifactStore,
    LocalStore,
    S3Config,
    S3Store,
    directory_digest,
    open_store,
    store_from_env,
)


@pytest.fixture(params=["local", "s3"])
def store_and_root(request, tmp_path: Path) -> tuple[ArtifactStore, str]:
    if request.param == "local":
        return LocalStore(str(tmp_path / "store")), str(tmp_path / "store")
    server = request.getfixturevalue("s3_server")
    bucket = request.getfixturevalue("s3_bucket")
    config = S3Config(server.endpoint, server.access_key, server.secret_key, server.region)
    return S3Store(config), f"s3://{bucket}/v2/artifacts"


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_file_round_trip_reports_size_and_sha256(store_and_root, tmp_path: Path) -> None:
    store, root = store_and_root
    data = os.urandom(3 * 1024 * 1024 + 17)
    src = _write(tmp_path / "in" / "data.bin", data)
    uri = f"{root}/p/run/task/a1/data"
    size, sha = store.put_file(str(src), uri)
    assert size == len(data)
    assert sha == hashlib.sha256(data).hexdigest()
    assert store.exists(uri)
    info = store.stat(uri)
    assert info.size == len(data) and not info.is_dir
    out = tmp_path / "out" / "copy.bin"
    store.get_file(uri, str(out))
    assert out.read_bytes() == data
    store.get(uri, str(tmp_path / "out" / "generic.bin"))
    assert (tmp_path / "out" / "generic.bin").read_bytes() == data


def test_directory_round_trip(store_and_root, tmp_path: Path) -> None:
    store, root = store_and_root
    src = tmp_path / "model"
    _write(src / "weights.bin", b"w" * 100)
    _write(src / "sub" / "config.json", b'{"a": 1}')
    uri = f"{root}/p/run/train/a1/model"
    size, sha = store.put(str(src), uri)
    expected = directory_digest(
        [
            ("sub/config.json", 8, hashlib.sha256(b'{"a": 1}').hexdigest()),
            ("weights.bin", 100, hashlib.sha256(b"w" * 100).hexdigest()),
        ]
    )
    assert (size, sha) == expected
    info = store.stat(uri)
    assert info.is_dir and info.size == 108
    assert store.list(uri + "/") == [f"{uri}/sub/config.json", f"{uri}/weights.bin"]
    dest = tmp_path / "fetched"
    store.get(uri, str(dest))
    assert (dest / "weights.bin").read_bytes() == b"w" * 100
    assert (dest / "sub" / "config.json").read_bytes() == b'{"a": 1}'
    store.delete(uri)
    assert not store.exists(uri)
    assert store.list(uri + "/") == []


def test_missing_objects_raise_not_found(store_and_root, tmp_path: Path) -> None:
    store, root = store_and_root
    uri = f"{root}/nothing/here"
    assert not store.exists(uri)
    with pytest.raises(ArtifactNotFound):
        store.stat(uri)
    with pytest.raises(ArtifactNotFound):
        store.get_file(uri, str(tmp_path / "x"))
    with pytest.raises(ArtifactNotFound):
        store.get(uri, str(tmp_path / "y"))
    with pytest.raises(ArtifactNotFound):
        store.put(str(tmp_path / "absent"), uri)
    store.delete(uri)  # deleting nothing is fine


def test_local_store_put_in_place_only_digests(tmp_path: Path) -> None:
    path = _write(tmp_path / "a" / "out", b"hello")
    store = LocalStore()
    assert store.put_file(str(path), str(path)) == (5, hashlib.sha256(b"hello").hexdigest())
    assert store.put_file(str(path), "file://" + str(path))[0] == 5
    assert path.read_bytes() == b"hello"


def test_open_store_picks_backend_by_scheme(s3_server, tmp_path: Path) -> None:
    assert isinstance(open_store(str(tmp_path)), LocalStore)
    assert isinstance(open_store("file://" + str(tmp_path)), LocalStore)
    env = {
        "STEPWELL_ARTIFACT_ROOT": "minio://mlpipeline/v2/artifacts",
        "STEPWELL_S3_ENDPOINT": s3_server.endpoint,
        "STEPWELL_S3_ACCESS_KEY": s3_server.access_key,
        "STEPWELL_S3_SECRET_KEY": s3_server.secret_key,
    }
    store = store_from_env(env)
    assert isinstance(store, S3Store)
    assert store.config.endpoint == s3_server.endpoint


def test_minio_and_s3_schemes_reach_the_same_object(s3_server, s3_bucket, tmp_path: Path) -> None:
    store = S3Store(S3Config(s3_server.endpoint, s3_server.access_key, s3_server.secret_key))
    src = _write(tmp_path / "f", b"abc")
    store.put_file(str(src), f"minio://{s3_bucket}/k/f")
    assert store.stat(f"s3://{s3_bucket}/k/f").size == 3
