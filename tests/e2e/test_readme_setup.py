"""The README's first set-up command, run as written, in a copy of the repository.

It creates a fresh virtualenv and installs Stepwell from scratch, so it catches a
dependency that only the test extras happen to bring in.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def setup_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Set up", 1)[1]
    return re.findall(r"```bash\n(.*?)\n```", section, flags=re.S)


def test_readme_has_exactly_two_setup_commands() -> None:
    commands = setup_commands()[:2]
    assert len(commands) == 2
    assert "examples/quickstart.py" in commands[0]
    assert commands[1].strip() == "./scripts/test"


@pytest.mark.slow
def test_first_setup_command_installs_and_runs_the_quickstart(tmp_path: Path) -> None:
    copy = tmp_path / "stepwell"
    shutil.copytree(
        ROOT, copy, ignore=shutil.ignore_patterns(".venv", ".git", "__pycache__", "*.egg-info", ".mypy_cache", ".ruff_cache")
    )
    command = setup_commands()[0]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHONPATH"))}
    env["STEPWELL_HOME"] = str(tmp_path / "home")
    done = subprocess.run(["bash", "-c", command], cwd=copy, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "SUCCEEDED" in done.stdout
    assert 'Output = "mean of 10 rows is 28.50, not above 30.0"' in done.stdout
