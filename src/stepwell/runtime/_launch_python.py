"""Running Python components as compiled, without their packaging prelude when it is not needed.

KFP's lightweight components are ``sh -c PRELUDE sh -ec LOADER SOURCE args...``
(kfp-facts §3.2): the prelude pip-installs the user's packages and ``kfp``, then execs
the loader, which writes SOURCE to a file and runs ``python3 -m kfp.dsl.executor_main``.
The launcher:

* skips the prelude when every requirement it installs is already satisfied in this
  interpreter (checked with ``importlib.metadata``; for ``kfp`` itself any installed
  2.x is accepted, since only its stdlib-only executor runs);
* replaces a recognised loader by a direct ``<this python> -m kfp.dsl.executor_main``
  call with ``_KFP_RUNTIME=true`` (saving a shell and a temp folder);
* puts a folder with ``python3``/``python`` scripts that exec this interpreter first on
  ``PATH`` (a symlink would lose a virtual environment),
  so any ``python3`` the command runs (a prelude that must install, an unrecognised
  loader) is the launcher's interpreter, as kfp.local's ``use_venv=False`` does.

Standard library only (``packaging`` is used when importable).
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import stat
import sys
from collections.abc import Sequence

KFP_EXECUTOR = "kfp.dsl.executor_main"
STEPWELL_EXECUTOR = "stepwell.runtime.executor"
_PIP_INSTALL = re.compile(r"pip\s+install\s+(.*?)(?:&&|\n|$)", re.S)
#: pip options that take a value (the value is not a requirement).
_VALUE_OPTIONS = {"--index-url", "-i", "--extra-index-url", "--trusted-host", "-f", "--find-links", "-c", "-r"}


def is_python_component(container: dict[str, object]) -> bool:
    """True for KFP or Stepwell lightweight Python components (no image is needed for them)."""
    text = " ".join(str(x) for x in [*(container.get("command") or []), *(container.get("args") or [])])  # type: ignore[misc]
    return KFP_EXECUTOR in text or STEPWELL_EXECUTOR in text


def is_kfp_component(argv: Sequence[str]) -> bool:
    """True when the command runs KFP's executor (it maps remote URIs to ``/minio/...`` paths)."""
    return any(KFP_EXECUTOR in arg for arg in argv)


def prelude_requirements(prelude: str) -> list[str] | None:
    """The requirements a KFP pip prelude installs, or None when ``prelude`` is not one."""
    if "pip install" not in prelude or not prelude.rstrip().endswith('"$0" "$@"'):
        return None
    found: list[str] = []
    for segment in _PIP_INSTALL.findall(prelude):
        try:
            tokens = shlex.split(segment)
        except ValueError:
            return None
        skip = False
        for token in tokens:
            if skip:
                skip = False
                continue
            if token in _VALUE_OPTIONS:
                skip = True
            elif not token.startswith("-"):
                found.append(token)
    return found


#: ``name==version`` (or a bare name): the form KFP's preludes pin ``kfp`` with.
_PINNED = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:==\s*([A-Za-z0-9.+!_-]+))?\s*$")
_INSTALLED: dict[str, tuple[str, str]] | None = None


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_versions() -> dict[str, tuple[str, str]]:
    """Installed distributions: normalized name -> ``(version, metadata folder)``.

    Read once per process from the ``*.dist-info`` / ``*.egg-info`` folder names on
    ``sys.path`` (no METADATA file is parsed). A fork server reads it before it forks,
    so each task's requirement check is a dictionary lookup.
    """
    global _INSTALLED
    if _INSTALLED is None:
        found: dict[str, tuple[str, str]] = {}
        for folder in sys.path:
            try:
                entries = os.scandir(folder or ".")
            except OSError:
                continue
            with entries:
                for entry in entries:
                    stem, dot, kind = entry.name.rpartition(".")
                    if not dot or kind not in ("dist-info", "egg-info"):
                        continue
                    name, _, version = stem.partition("-")
                    if name and version:
                        found.setdefault(_normalize(name), (version.partition("-")[0], entry.path))
        _INSTALLED = found
    return _INSTALLED


def _installed_version(name: str) -> str | None:
    entry = installed_versions().get(_normalize(name))
    if entry is not None and os.path.exists(entry[1]):
        return entry[0]
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def requirement_satisfied(requirement: str) -> bool:
    """Whether ``requirement`` (a pip requirement string) is installed in this interpreter."""
    pinned = _PINNED.match(requirement)
    if pinned is not None:
        name, wanted = pinned.group(1), pinned.group(2)
        installed = _installed_version(name)
        if installed is None:
            return False
        if _normalize(name) == "kfp":
            return installed.split(".")[0] == "2"
        return wanted is None or installed == wanted
    try:
        from packaging.requirements import InvalidRequirement, Requirement
    except ImportError:  # pragma: no cover - packaging is nearly always there
        return False
    try:
        req = Requirement(requirement)
    except InvalidRequirement:
        return False
    if req.marker is not None and not req.marker.evaluate():
        return True
    if req.url:
        return False
    installed = _installed_version(req.name)
    if installed is None:
        return False
    if req.name.lower() == "kfp":
        return installed.split(".")[0] == "2"
    return req.specifier.contains(installed, prereleases=True)


def rewrite_python_command(argv: list[str], scratch_dir: str) -> tuple[list[str], dict[str, str], list[str]]:
    """``argv`` made to run in this interpreter: ``(argv, extra env, notes for the log)``."""
    notes: list[str] = []
    env: dict[str, str] = {}
    if len(argv) >= 4 and argv[0] == "sh" and argv[1] == "-c":
        requirements = prelude_requirements(argv[2])
        if requirements is not None:
            missing = [r for r in requirements if not requirement_satisfied(r)]
            if missing:
                notes.append(f"installing {', '.join(missing)} (not satisfied in {sys.executable})")
            else:
                notes.append(f"skipping the pip prelude: {', '.join(requirements)} already satisfied")
                argv = argv[3:]
    if (
        len(argv) >= 4
        and argv[0] == "sh"
        and argv[1] in ("-ec", "-c")
        and KFP_EXECUTOR in argv[2]
        and "ephemeral_component.py" in argv[2]
    ):
        # Straight in the scratch folder (the command's working folder, already first on
        # its ``sys.path``): a folder of its own would cost one more inode per task.
        os.makedirs(scratch_dir, exist_ok=True)
        module = os.path.join(scratch_dir, "ephemeral_component.py")
        with open(module, "w", encoding="utf-8") as f:
            f.write(argv[3])
        argv = [sys.executable, "-m", KFP_EXECUTOR, "--component_module_path", module, *argv[4:]]
    if is_kfp_component(argv):
        env["_KFP_RUNTIME"] = "true"
    return argv, env, notes


#: The shared shim folder once this process has checked it (a fork server's children inherit it).
_SHARED_SHIM: str | None = None


def _shim_text() -> str:
    return f"#!/bin/sh\nexec {shlex.quote(sys.executable)} \"$@\"\n"


def _write_shim(folder: str, text: str, atomic: bool) -> None:
    for name in ("python3", "python"):
        script = os.path.join(folder, name)
        if atomic:  # another launcher may be reading or writing the same folder
            tmp = f"{script}.{os.getpid()}.tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text)
            os.chmod(tmp, 0o755)
            os.replace(tmp, script)
        elif not os.path.exists(script):
            with open(script, "w", encoding="utf-8") as f:
                f.write(text)
            os.chmod(script, 0o755)


def shared_python_shim() -> str | None:
    """This user's shim folder for this interpreter (``~/.cache/stepwell/python-shim-<hash>``),
    created or repaired when needed; None when it cannot be used."""
    global _SHARED_SHIM
    if _SHARED_SHIM is not None:
        # Two stats per task: someone may have cleaned the cache folder since.
        if all(os.access(os.path.join(_SHARED_SHIM, n), os.X_OK) for n in ("python3", "python")):
            return _SHARED_SHIM
        _SHARED_SHIM = None
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    if not os.path.isabs(cache):
        return None
    key = hashlib.sha256(sys.executable.encode()).hexdigest()[:16]
    folder = os.path.join(cache, "stepwell", f"python-shim-{key}")
    text = _shim_text()
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        info = os.lstat(folder)
        # Only a folder of ours that nobody else can write is trusted to name our interpreter.
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
            return None
        for name in ("python3", "python"):
            script = os.path.join(folder, name)
            try:
                with open(script, encoding="utf-8") as f:
                    ok = f.read() == text and os.access(script, os.X_OK)
            except OSError:
                ok = False
            if not ok:
                _write_shim(folder, text, atomic=True)
                break
    except OSError:
        return None
    _SHARED_SHIM = folder
    return folder


def python_shim(scratch_dir: str) -> str:
    """A folder whose ``python3`` and ``python`` run this interpreter (put first on ``PATH``).

    Shared by every task of this user and interpreter when the user's cache folder is
    usable, because creating files costs more than the rest of a no-op task's bookkeeping
    (three new inodes per task); else a folder in the task's scratch folder.
    """
    shared = shared_python_shim()
    if shared is not None:
        return shared
    folder = os.path.join(scratch_dir, ".python-shim")
    os.makedirs(folder, exist_ok=True)
    _write_shim(folder, _shim_text(), atomic=False)
    return folder
