"""One scheduler + metadata service per test module (SQLite, a local artifact folder)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kfp_corpus.harness import Corpus, start_corpus_stack


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Corpus]:
    root: Path = tmp_path_factory.mktemp("corpus")
    stack = start_corpus_stack(root)
    try:
        yield stack
    finally:
        stack.close()
