"""The launcher's check of a KFP pip prelude: which requirements are already satisfied."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import pytest

from stepwell.runtime import _launch_python as launch
from stepwell.runtime._launch_python import (
    installed_versions,
    prelude_requirements,
    requirement_satisfied,
)


def test_installed_versions_agree_with_importlib_metadata() -> None:
    index = installed_versions()
    for name in ("kfp", "grpcio", "protobuf", "SQLAlchemy", "typing_extensions"):
        version, folder = index[launch._normalize(name)]
        assert version == metadata.version(name), name
        assert folder.endswith((".dist-info", ".egg-info"))


@pytest.mark.parametrize(
    ("requirement", "expected"),
    [
        (f"protobuf=={metadata.version('protobuf')}", True),
        ("protobuf==0.0.1", False),
        ("protobuf", True),
        ("Typing_Extensions", True),  # names compare normalized
        ("surely-not-installed-stepwell-xyz", False),
        ("surely-not-installed-stepwell-xyz==1.0", False),
        ("kfp==2.0.0", True),  # any installed kfp 2.x runs a kfp 2 component
        ("protobuf>=3", True),
        ("protobuf<1", False),
        ('typing-extensions>=3.7.4,<5; python_version<"3.9"', True),  # marker false: nothing to install
        ("not a requirement ((", False),
    ],
)
def test_requirement_satisfied(requirement: str, expected: bool) -> None:
    assert requirement_satisfied(requirement) is expected


def test_a_removed_distribution_is_no_longer_satisfied(monkeypatch: pytest.MonkeyPatch) -> None:
    # The index is read once per process (a fork server's children inherit it); a package
    # removed since must not pass for installed.
    monkeypatch.setattr(launch, "_INSTALLED", {"ghost-package": ("1.0", "/nonexistent/ghost_package-1.0.dist-info")})
    assert requirement_satisfied("ghost-package==1.0") is False


def test_kfp_prelude_requirements() -> None:
    prelude = (
        "\nif ! [ -x \"$(command -v pip)\" ]; then\n    python3 -m ensurepip\nfi\n\n"
        "PIP_DISABLE_PIP_VERSION_CHECK=1 python3 -m pip install --quiet --no-warn-script-location "
        "'kfp==2.17.3' '--no-deps' 'typing-extensions>=3.7.4,<5; python_version<\"3.9\"' && "
        '"$0" "$@"\n'
    )
    assert prelude_requirements(prelude) == ["kfp==2.17.3", 'typing-extensions>=3.7.4,<5; python_version<"3.9"']


def _runs_this_python(folder: str) -> bool:
    import os
    import subprocess
    import sys

    for name in ("python3", "python"):
        out = subprocess.run(
            [os.path.join(folder, name), "-c", "import sys; print(sys.executable)"],
            capture_output=True,
            text=True,
            check=True,
        )
        if out.stdout.strip() != sys.executable:
            return False
    return True


def test_the_python_shim_is_shared_and_repaired(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(launch, "_SHARED_SHIM", None)
    first = launch.python_shim(str(tmp_path / "a"))
    assert first.startswith(str(tmp_path / "cache" / "stepwell"))
    assert launch.python_shim(str(tmp_path / "b")) == first
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    assert _runs_this_python(first)
    # A damaged shim is rewritten by the next process that checks it.
    with open(f"{first}/python3", "w") as f:
        f.write("#!/bin/sh\nexit 1\n")
    monkeypatch.setattr(launch, "_SHARED_SHIM", None)
    assert launch.python_shim(str(tmp_path / "c")) == first
    assert _runs_this_python(first)


def test_the_python_shim_falls_back_to_the_scratch_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cache").write_text("not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(launch, "_SHARED_SHIM", None)
    folder = launch.python_shim(str(tmp_path / "scratch"))
    assert folder == str(tmp_path / "scratch" / ".python-shim")
    assert _runs_this_python(folder)
