"""Recording a result in the metadata service after the tasks it lets start.

A mixin of :class:`~stepwell_scheduler.engine.driver.Engine`. Ending an execution in the
metadata service (``FinishExecutions``) is a round trip to another service and a
transaction there: on the path from a task's exit to its downstream task's start, it
was 1 to 2 ms of the engine's 7 to 10 ms. A successful attempt that produced parameters only
(no artifacts) need not be recorded before its consumers start: their executor input
names no artifact ids of it, and their own executions link to nothing of it. So its
row is ended with ``unrecorded`` set, in the same transaction that claims the tasks it
lets start, and it is recorded after they started (one call for the step, on the
recorder's thread: :mod:`.recorder`), then the flag is cleared. An attempt that produced artifacts is recorded before, as its
consumers' executor input and INPUT events carry the artifact ids it gets.

The flag makes this an outbox: if the scheduler dies between the commit and the record,
the row still says so, and whoever finds it later records it (the metadata service's
end of an execution is idempotent, and so is the cache entry's replay). A scheduler
looks for such rows when it starts and at every lease heartbeat: rows of runs it holds,
and rows of runs whose owner is gone (dead on this host, or its lease expired). Until
the flag is cleared a run is not reported final (``status.StatusCache``), so nobody
sees a run SUCCEEDED whose last results the metadata service does not have yet.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import Update, select, update

from stepwell.server import Database
from stepwell_scheduler.engine.leases import Leases
from stepwell_scheduler.metadata_client import ExecutionEnd, MetadataClient
from stepwell_scheduler.models import SUCCEEDED, RunRow, TaskRow

log = logging.getLogger(__name__)

#: At most this many rows left unrecorded are recorded per heartbeat.
_SWEEP_BATCH = 500


def execution_end(run: RunRow, execution_id: int, outputs: dict[str, Any], state: str) -> ExecutionEnd:
    """The metadata service's end of an attempt's execution: its final state, output
    parameters, and (of a success) its produced artifacts."""
    return ExecutionEnd(
        execution_id=execution_id,
        state=state,
        parameters=outputs.get("parameters") or {},
        artifacts=(outputs.get("artifacts") or {}) if state == SUCCEEDED else {},
        context_ids=[run.pipeline_context_id, run.run_context_id],
    )


def end_executions(metadata: MetadataClient, ends: list[ExecutionEnd]) -> list[dict[str, list[int]]]:
    """Ends the executions in one call, or, when it fails, one by one (one bad item
    fails a whole batch). Per end, the ids of its output artifacts by name; ``{}`` for
    one that could not be ended (logged: a metadata failure never fails a task)."""
    if not ends:
        return []
    try:
        return metadata.finish_executions(ends)
    except Exception as err:
        if len(ends) == 1:
            log.warning("could not record the outputs of execution %s: %s", ends[0].execution_id, err)
            return [{}]
    return [(end_executions(metadata, [end]) or [{}])[0] for end in ends]


def cache_entry(run: RunRow, row: TaskRow, outputs: dict[str, Any]) -> dict[str, Any]:
    """The arguments of ``MetadataClient.put_cache_entry`` for a task's successful result."""
    return dict(
        pipeline_name=run.pipeline_name,
        namespace=run.namespace,
        fingerprint=row.fingerprint,
        run_id=run.run_id,
        task_name=row.qualified_name,
        execution_id=row.execution_id,
        outputs=outputs,
    )


def may_record_later(state: str, outputs: dict[str, Any], replay: bool) -> bool:
    """Whether an ended attempt's execution may be recorded after the tasks its end lets
    start: a success with no output artifacts, harvested for the first time (a replay
    is rare and is recorded at once, as before)."""
    if state != SUCCEEDED or replay:
        return False
    return not any(records for records in (outputs.get("artifacts") or {}).values())


def recorded(row_ids: list[int]) -> Update:
    """The statement that clears the ``unrecorded`` flag of these rows."""
    return update(TaskRow).where(TaskRow.id.in_(row_ids), TaskRow.unrecorded.is_(True)).values(unrecorded=False)


class OutboxMixin:
    """Results recorded after the starts they allow (part of the engine)."""

    db: Database
    leases: Leases
    #: ``(run id, row id)`` of rows whose results are recorded and whose flag is not
    #: cleared yet.
    _to_clear: list[tuple[str, int]]
    on_change: Callable[[str], None]

    if TYPE_CHECKING:

        def _record_all(self, items: list[tuple[RunRow, int, dict[str, Any], str]]) -> None: ...
        def _recording_ids(self) -> set[int]: ...
        def _put_cache_entry(
            self, run: RunRow, row: TaskRow, outputs: dict[str, Any], replay: bool = False
        ) -> None: ...

    def _record_unrecorded(self, ends: list[tuple[RunRow, TaskRow, dict[str, Any], str]], replay: bool) -> None:
        """Ends the executions of ``(run, row, outputs, state)`` in the metadata service,
        adds the cache entries of the successful ones and clears the rows' flag (the
        sweep; the engine's own go through :meth:`~.recorder.RecordsMixin._send_results`)."""
        if not ends:
            return
        self._record_all([(run, row.execution_id, outputs, state) for run, row, outputs, state in ends if row.execution_id])
        for run, row, outputs, state in ends:
            if row.fingerprint and row.execution_id and state == SUCCEEDED:
                self._put_cache_entry(run, row, outputs, replay=replay)
        if self._clear_unrecorded([row.id for _run, row, _outputs, _state in ends]):
            for run_id in {run.run_id for run, _row, _outputs, _state in ends}:
                self.on_change(run_id)  # it may be final now (after a crash, say)

    def _clear_unrecorded(self, row_ids: list[int]) -> bool:
        """Clears the rows' flags; False (logged) when it could not."""
        try:
            with self.db.autocommit() as connection:
                connection.execute(recorded(row_ids))
            return True
        except Exception as err:
            log.warning("could not mark %d recorded result(s) as such (%s); recording them again later", len(row_ids), err)
            return False

    def _record_left(self) -> int:
        """Records results that a scheduler ended ``unrecorded`` and never recorded: of
        runs this scheduler holds, and of runs whose owner is gone. Returns how many."""
        with self.db.session() as s:
            found = s.execute(
                select(TaskRow, RunRow)
                .join(RunRow, RunRow.run_id == TaskRow.run_id)
                .where(TaskRow.unrecorded.is_(True))
                .order_by(TaskRow.id)
                .limit(_SWEEP_BATCH)
            ).all()
        dead: dict[str, bool] = {}
        mine = self._recording_ids()  # this engine's own, under way
        left = [
            (row, run)
            for row, run in found
            if row.id not in mine
            and (run.lease_owner == self.leases.owner or self.leases.abandoned(run.lease_owner, run.lease_expires_at, dead))
        ]
        if not left:
            return 0
        log.info("recording %d result(s) a scheduler ended but did not record in the metadata service", len(left))
        self._record_unrecorded([(run, row, row.outputs or {}, row.state) for row, run in left], replay=True)
        return len(left)
