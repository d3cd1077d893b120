"""KFP pipelines with many task rows, for the status reporting and watching tests.

(No ``from __future__ import annotations``: kfp reads the components' annotations.)
"""

from pathlib import Path
from typing import Any

from kfp import dsl

from tests.kfp_corpus.harness import compile_pipeline


@dsl.component(base_image="python:3.11")
def echo_item(i: int) -> int:
    return i


@dsl.component(base_image="python:3.11")
def picky_item(i: int, marker: str) -> int:
    import os

    if i % 4 == 1 and not os.path.exists(marker):
        raise RuntimeError(f"item {i} needs {marker}")
    return i


def loop_spec(items: int, folder: Path) -> dict[str, Any]:
    """A ParallelFor over ``items`` items: 2 x ``items`` + 1 task rows."""

    def build() -> Any:
        @dsl.pipeline(name="many-tasks")
        def pipeline() -> None:
            with dsl.ParallelFor(items=list(range(items))) as i:
                echo_item(i=i).set_caching_options(False)

        return pipeline

    return compile_pipeline(build, folder)


#: The tasks of :func:`picky_spec` that fail until the marker file exists.
PICKY_FAILURES = {"for-loop-2[1]/picky-item", "for-loop-2[5]/picky-item"}


def picky_spec(folder: Path) -> dict[str, Any]:
    """A ParallelFor over 8 items whose items 1 and 5 fail until the file named by the
    ``marker`` parameter exists."""

    def build() -> Any:
        @dsl.pipeline(name="picky-tasks")
        def pipeline(marker: str) -> None:
            with dsl.ParallelFor(items=list(range(8))) as i:
                picky_item(i=i, marker=marker).set_caching_options(False)

        return pipeline

    return compile_pipeline(build, folder)


def limited_picky_spec(folder: Path, items: int, parallelism: int) -> dict[str, Any]:
    """:func:`picky_spec` over ``items`` items, at most ``parallelism`` at a time."""

    def build() -> Any:
        @dsl.pipeline(name="limited-picky-tasks")
        def pipeline(marker: str) -> None:
            with dsl.ParallelFor(items=list(range(items)), parallelism=parallelism) as i:
                picky_item(i=i, marker=marker).set_caching_options(False)

        return pipeline

    return compile_pipeline(build, folder)
