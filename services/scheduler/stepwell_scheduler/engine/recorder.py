"""The metadata records that follow a start, made on a thread of their own.

A mixin of :class:`~stepwell_scheduler.engine.driver.Engine`. After the processes of a
step start, their executions are created in the metadata service (``CreateExecutions``),
and the results ended ``unrecorded`` in the step (see :mod:`.outbox`) are ended there
(``FinishExecutions``, and their cache entries). On Postgres these cost 4 to 5 ms each,
several round trips in the metadata service: made on the engine thread, an exit that
came meanwhile waited for them, on the path from a task's end to its downstream task's
start. So the engine builds the calls and hands them to :class:`Recorder`, one thread
that makes them in order; the engine thread goes on harvesting and starting, and stores
what came back (execution ids, cleared outbox flags: one statement) once a call is
done and no exit waits.

Nothing of this changes what a crash leaves: a started attempt whose execution id is not
stored keeps ``lookup_execution`` (its harvest, or a recovery, finds the execution by
run, task and attempt), and a result whose record is not done keeps ``unrecorded`` (the
sweep records it). The one wait left on the engine thread is an attempt that ended
before its execution was recorded: its harvest needs the id, and waits for that call.
Every database write of task rows stays on the engine thread (see :mod:`.fences`); the
recorder thread only calls the metadata service, with values copied out of the rows.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import select

from stepwell.server import Database
from stepwell_scheduler.engine.failpoints import Failpoints
from stepwell_scheduler.engine.leases import Leases
from stepwell_scheduler.engine.outbox import cache_entry, end_executions, execution_end, recorded
from stepwell_scheduler.engine.processes import _Prepared, stored
from stepwell_scheduler.engine.provision import execution_properties
from stepwell_scheduler.metadata_client import (
    CONTAINER_EXECUTION,
    ExecutionEnd,
    ExecutionStart,
    MetadataClient,
)
from stepwell_scheduler.models import FAILED, SUCCEEDED, RunRow, TaskRow

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from stepwell_scheduler.engine.harvest import _Ended

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Results ended ``unrecorded`` are handed over at the end of a step (nothing waits for
#: their records but the run's final report), or once this many have gathered.
_GATHER_RESULTS = 256


class Recorder:
    """Runs calls one at a time, in the order given, on a thread of its own; ``on_done``
    is called (on that thread) after each. A daemon thread: a call that never returns
    (an in-process call has no deadline) holds up neither a stop nor the process's exit."""

    def __init__(self, on_done: Callable[[], None]) -> None:
        self._on_done = on_done
        self._calls: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="metadata-recorder", daemon=True)
        self._thread.start()

    def submit(self, call: Callable[[], T]) -> Future[T]:
        """Schedules ``call``."""
        future: Future[T] = Future()
        self._calls.put((call, future))
        return future

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stops the thread once the calls given are done (waiting up to ``timeout``)."""
        self._calls.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while (item := self._calls.get()) is not None:
            call, future = item
            try:
                future.set_result(call())
            except BaseException as err:
                future.set_exception(err)
            self._on_done()


def _done(value: T) -> Future[T]:
    future: Future[T] = Future()
    future.set_result(value)
    return future


@dataclass
class _Batch:
    """Calls handed to the recorder in one go: executions to create for ``starts`` (ids
    in their order) or results to end, whose rows' flags are cleared once done."""

    future: Future[Any]
    starts: list[_Prepared] = field(default_factory=list)
    keys: frozenset[str] = frozenset()
    clears: list[tuple[str, int]] = field(default_factory=list)


def create_executions(metadata: MetadataClient, starts: list[ExecutionStart]) -> list[int]:
    """Creates the executions (one call); on failure one by one, 0 for each that fails."""
    try:
        return metadata.start_executions(starts)
    except Exception as err:
        log.warning("could not record %d task(s) in the metadata service at once (%s); one by one", len(starts), err)
    ids = []
    for start in starts:  # one bad item fails a whole batch
        try:
            (execution_id,) = metadata.start_executions([start])
        except Exception as err:
            log.warning("could not record task %s in the metadata service: %s", start.name, err)
            execution_id = 0
        ids.append(execution_id)
    return ids


def finish_executions(metadata: MetadataClient, ends: list[ExecutionEnd], entries: list[dict[str, Any]]) -> None:
    """Ends the executions (:func:`~.outbox.end_executions`), then stores the cache
    entries. Failures are logged: the results are in the task rows, as for any result."""
    end_executions(metadata, ends)
    for entry in entries:
        try:
            metadata.put_cache_entry(**entry)
        except Exception as err:
            log.warning("could not store the cache entry of task %s: %s", entry["task_name"], err)


class RecordsMixin:
    """Metadata records after the starts, on the recorder thread (part of the engine)."""

    db: Database
    metadata: MetadataClient
    recorder: Recorder
    leases: Leases
    failpoint: Failpoints
    on_change: Callable[[str], None]
    _owned: set[str]
    #: Attempts started whose executions are not handed to the recorder yet.
    _pending_starts: list[_Prepared]
    #: Attempts ended ``unrecorded`` whose records are not handed to the recorder yet.
    _later: list[_Ended]
    #: Calls handed to the recorder whose outcome is not stored yet, oldest first.
    _in_flight: collections.deque[_Batch]
    #: ``(run id, row id)`` of rows whose results are recorded and whose outbox flag is
    #: not cleared yet.
    _to_clear: list[tuple[str, int]]

    if TYPE_CHECKING:

        def _start_execution(
            self, run: RunRow, row: TaskRow, execution_type: str, attempt: int, image: str, lookup: bool | None = None
        ) -> int: ...
        def _update_claimed(self, connection: Connection, values: list[dict[str, Any]]) -> None: ...

    def _send_records(self, results: bool = True, force: bool = False) -> None:
        """Hands the executions of the attempts started since, then (``results``) the
        records of the results ended ``unrecorded``, to the recorder; unless ``force``,
        only when it is idle: while a call is under way, what comes meanwhile gathers
        into the next one (a busy engine's calls grow instead of multiplying)."""
        if not force and self._in_flight and not self._in_flight[-1].future.done():
            return
        self._send_starts()
        if results or len(self._later) >= _GATHER_RESULTS:
            later, self._later = self._later, []
            self._send_results(later)

    def _send_starts(self) -> None:
        """Hands the executions of the attempts started since to the recorder (one call).
        An attempt a lost attempt may have recorded already is looked up here, on the
        engine thread (after a takeover only)."""
        started = [p for p in self._pending_starts if p.run.run_id in self._owned]
        self._pending_starts = []
        fresh = [p for p in started if not p.lookup]
        if fresh:
            starts = [
                ExecutionStart(
                    execution_type=CONTAINER_EXECUTION,
                    name=p.row.qualified_name,
                    context_ids=[p.run.pipeline_context_id, p.run.run_context_id],
                    inputs=(p.row.inputs or {}).get("parameters") or {},
                    custom_properties=execution_properties(p.run, p.row, p.attempt, p.image),
                    input_artifacts=(p.row.inputs or {}).get("artifacts") or {},
                )
                for p in fresh
            ]
            metadata = self.metadata
            future = self.recorder.submit(lambda: create_executions(metadata, starts))
            keys = frozenset(p.request.key for p in fresh if p.request is not None)
            self._in_flight.append(_Batch(future, starts=fresh, keys=keys))
        looked_up = [p for p in started if p.lookup]
        if looked_up:
            ids = [
                self._start_execution(p.run, p.row, CONTAINER_EXECUTION, p.attempt, p.image, lookup=True)
                for p in looked_up
            ]
            keys = frozenset(p.request.key for p in looked_up if p.request is not None)
            self._in_flight.append(_Batch(_done(ids), starts=looked_up, keys=keys))

    def _send_results(self, ended: list[_Ended]) -> None:
        """Hands the records of attempts ended ``unrecorded`` to the recorder (one call
        and their cache entries); their flags are cleared once it is done."""
        ends = [e for e in ended if e.row.execution_id]
        if not ends:
            return
        # Built here, on the engine thread: the recorder's reads nothing of the rows.
        calls = [execution_end(e.run, e.row.execution_id, e.outputs, e.state) for e in ends]
        entries = [cache_entry(e.run, e.row, e.outputs) for e in ends if e.row.fingerprint and e.state == SUCCEEDED]
        metadata = self.metadata
        future = self.recorder.submit(lambda: finish_executions(metadata, calls, entries))
        self._in_flight.append(_Batch(future, clears=[(e.run.run_id, e.row.id) for e in ends]))

    def _take_records(self, keys: set[str] | None = None) -> None:
        """Stores what the recorder's finished calls gave: execution ids, and the outbox
        flags of results recorded (one statement). With ``keys`` (attempts about to be
        harvested), only when one of them is among the calls, waiting for it: its end
        needs its execution id. It does not raise: an attempt whose execution id could
        not be stored keeps its lookup mark (its harvest finds the execution by run, task
        and attempt), and flags not cleared are tried again at the next call (or by the
        sweep). Attempts of runs this engine let go of meanwhile are left to the runs'
        new owners, who look them up the same way."""
        if keys is not None:
            if any(p.request is not None and p.request.key in keys for p in self._pending_starts):
                self._send_starts()
            last = max((i for i, b in enumerate(self._in_flight) if b.keys & keys), default=-1)
            if last < 0:
                return
            for batch in list(self._in_flight)[: last + 1]:
                batch.future.exception()  # waits
        started: list[_Prepared] = []
        while self._in_flight and self._in_flight[0].future.done():
            batch = self._in_flight.popleft()
            if batch.starts:
                for p, execution_id in zip(batch.starts, batch.future.result(), strict=False):
                    p.execution_id = execution_id
                started += [p for p in batch.starts if p.run.run_id in self._owned]
            self._to_clear += batch.clears
        if started:
            self.failpoint("execution-created", len(started))
        self._store_records([p for p in started if p.execution_id])

    def _store_records(self, recorded_ids: list[_Prepared]) -> None:
        clearing, self._to_clear = self._to_clear, []
        if not recorded_ids and not clearing:
            return
        try:
            with self.db.autocommit() as connection:
                self._update_claimed(
                    connection,
                    [{"row_id": p.row.id, "execution_id": p.execution_id, "lookup_execution": False} for p in recorded_ids],
                )
                if clearing:
                    connection.execute(recorded([row_id for _run_id, row_id in clearing]))
        except Exception as err:
            log.warning(
                "could not store %d execution id(s) and clear %d result flag(s) (%s); the harvests look the "
                "executions up, the flags are cleared later", len(recorded_ids), len(clearing), err,
            )
            self._to_clear += clearing
            return
        for run_id in {run_id for run_id, _row_id in clearing}:
            self.on_change(run_id)  # it may be final now
        for p in recorded_ids:
            stored(p.row, execution_id=p.execution_id, lookup_execution=False)
        if not all(self.leases.unbroken(p.epoch) for p in recorded_ids):
            try:
                self._close_orphaned(recorded_ids)
            except Exception as err:
                log.warning("could not check %d execution(s) recorded across a lapse of the leases: %s", len(recorded_ids), err)

    def _recording_ids(self) -> set[int]:
        """Ids of the rows ended ``unrecorded`` whose records this engine has under way
        (not handed over, in a call, or done with the flag not cleared yet): the sweep
        leaves them alone."""
        ids = {e.row.id for e in self._later}
        ids.update(row_id for batch in self._in_flight for _run_id, row_id in batch.clears)
        ids.update(row_id for _run_id, row_id in self._to_clear)
        return ids

    def _drain_records(self) -> None:
        """Hands over what is left, waits for every call and stores what they gave (the
        engine stopping)."""
        self._send_records(results=True, force=True)
        for batch in list(self._in_flight):
            batch.future.exception()
        self._take_records()

    def _close_orphaned(self, recorded: list[_Prepared]) -> None:
        """After a lapse of the leases (this process stalled between a start and the
        record of its execution): another scheduler may have taken the run over meanwhile
        and recorded the attempt under an execution of its own, or queued the task again.
        An execution recorded here that the row does not name (and cannot come to name:
        a row waiting for a lookup finds it by run, task and attempt) is closed as FAILED,
        so that every task ends with exactly one successful execution."""
        with self.db.session() as s:
            found = {
                row_id: (attempt, execution_id)
                for row_id, attempt, execution_id in s.execute(
                    select(TaskRow.id, TaskRow.attempt, TaskRow.execution_id).where(
                        TaskRow.id.in_([p.row.id for p in recorded])
                    )
                )
            }
        for p in recorded:
            attempt, execution_id = found.get(p.row.id, (0, -1))
            if attempt == p.attempt and execution_id in (0, p.execution_id):
                continue
            log.warning(
                "task %s of run %s was taken over while this scheduler stalled; closing its execution %d",
                p.row.qualified_name, p.run.run_id, p.execution_id,
            )
            try:
                self.metadata.finish_execution(
                    p.execution_id, FAILED, {}, error="another scheduler took this attempt over and recorded it itself"
                )
            except Exception as err:
                log.warning("could not close execution %d: %s", p.execution_id, err)
