"""Fixtures of the executor tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from stepwell_scheduler.executors import LocalExecutor


@pytest.fixture
def executor() -> Iterator[LocalExecutor]:
    executor = LocalExecutor(start_method="fork")
    try:
        yield executor
    finally:
        executor.shutdown()
