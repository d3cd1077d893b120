"""The committed generated code must be exactly what scripts/gen-protos produces."""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_code_matches_protos(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHON=sys.executable)
    subprocess.run([str(ROOT / "scripts" / "gen-protos"), str(tmp_path)], check=True, env=env, cwd=ROOT)
    fresh = tmp_path / "stepwell" / "v1"
    committed = ROOT / "src" / "stepwell" / "v1"
    fresh_files = sorted(p.name for p in fresh.iterdir() if p.is_file())
    committed_files = sorted(p.name for p in committed.iterdir() if p.is_file() and not p.name.endswith(".pyc"))
    assert fresh_files == committed_files, "generated file set differs: run scripts/gen-protos"
    _, mismatch, errors = filecmp.cmpfiles(fresh, committed, fresh_files, shallow=False)
    assert not mismatch and not errors, f"generated code drifted in {mismatch or errors}: run scripts/gen-protos"


def test_every_proto_is_generated() -> None:
    protos = sorted(p.stem for p in (ROOT / "protos" / "stepwell" / "v1").glob("*.proto"))
    generated = sorted(p.name.removesuffix("_pb2.py") for p in (ROOT / "src" / "stepwell" / "v1").glob("*_pb2.py"))
    assert protos == generated
