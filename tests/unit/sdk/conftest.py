"""Shared helpers for the SDK tests: load a pipeline source as stepwell or as kfp."""

from __future__ import annotations

import importlib.util
import itertools
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SRC = Path(__file__).resolve().parents[3] / "src"
PIPELINES = Path(__file__).resolve().parent / "pipelines"

if str(SRC) not in sys.path:  # until the package is installed into the venv
    sys.path.insert(0, str(SRC))

_counter = itertools.count()


def load_source(path: Path, flavor: str, tmp_dir: Path) -> ModuleType:
    """Import the pipeline file ``path`` with its ``stepwell`` imports swapped for ``flavor``."""
    text = path.read_text()
    if flavor == "kfp":
        text = text.replace("from stepwell import", "from kfp import").replace(
            "from stepwell.dsl import", "from kfp.dsl import"
        )
    module_name = f"sdk_test_{flavor}_{path.stem}_{next(_counter)}"
    target = tmp_dir / f"{module_name}.py"
    target.write_text(text)
    spec = importlib.util.spec_from_file_location(module_name, target)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def load_pipeline(tmp_path: Path) -> Any:
    """``load_pipeline(name, flavor)`` -> the file's ``TARGET`` object."""

    def load(name: str, flavor: str = "stepwell") -> Any:
        return load_source(PIPELINES / f"{name}.py", flavor, tmp_path).TARGET

    return load
