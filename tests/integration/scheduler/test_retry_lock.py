"""RetryRun locks the run before it checks its state: a retry that waits for another
transaction holding the run (another scheduler's retry) sees what that one committed and
refuses, rather than resetting the run a second time. Real Postgres (SQLite has one
writer at a time, so the race cannot happen there)."""

from __future__ import annotations

import threading
import uuid

import pytest
from sqlalchemy import select

from stepwell.errors import FailedPrecondition
from stepwell.v1 import common_pb2
from stepwell_scheduler.models import RUNNING, RunRow
from tests.integration.scheduler.pipelines import failing_pipeline
from tests.integration.scheduler.stack import Stack


@pytest.mark.parametrize("stack", ["postgres-s3"], indirect=True)
def test_a_retry_waits_for_the_run_and_sees_it_retried(stack: Stack) -> None:
    run_id = uuid.uuid4().hex
    stack.start(run_id, failing_pipeline())
    assert stack.wait(run_id).state == common_pb2.FAILED
    db = stack.scheduler.database
    outcome: list[BaseException | None] = []
    with db.session() as s:
        # Another retry holds the run and resets it; ours must wait, then refuse.
        run = s.scalars(select(RunRow).where(RunRow.run_id == run_id).with_for_update()).one()
        retry = threading.Thread(target=lambda: outcome.append(_retry(stack, run_id)))
        retry.start()
        retry.join(timeout=1.0)
        assert retry.is_alive(), "the retry did not wait for the run's row lock"
        run.state = RUNNING
    retry.join(timeout=30)
    assert len(outcome) == 1 and isinstance(outcome[0], FailedPrecondition), outcome


def _retry(stack: Stack, run_id: str) -> BaseException | None:
    try:
        stack.scheduler.service.retry_run(run_id)
    except BaseException as err:  # returned for the assertion
        return err
    return None
