"""Reports run status to the API service, in the background, retrying until it is heard.

Reports for the same run coalesce: only the newest status is sent. A report carries only
the tasks that changed since the last report of the run the API service acknowledged
(``partial``), so its cost follows the changes, not the size of the run. It carries every
task instead, replacing what the API service had, when there is no acknowledged report
to build on (the first report of a run by this process, or the first to a new API
address), when an acknowledged task no longer exists (a retry deletes failed tasks), and
when the run has ended: whatever happened to earlier reports, the API service's final
record of a run is then exactly the scheduler's, at the cost of one full report per run.
A final report the API service has acknowledged is not sent again while the run stays
as it was (a late change to a task's bookkeeping marks an ended run again).
A failed report leaves the baseline where it was, so the next one covers everything
since the last acknowledged report.

After each report of a run, the next one waits for a few times what the last one cost
(at most a second), which keeps reporting a small share of the work of a busy run and
costs a run of a few tasks nothing. A failed report never affects the run; it is retried
after ``retry_seconds``.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import timestamp_pb2

from stepwell.v1 import run_pb2, run_pb2_grpc
from stepwell_scheduler.peers import LazyStub
from stepwell_scheduler.status import RunSnapshot

log = logging.getLogger(__name__)

#: The gap after a report, as a multiple of what the report cost, and its upper bound.
_SPACING_FACTOR = 3.0
_MAX_SPACING = 1.0
#: How many ended runs' final reports are remembered, so as not to send them twice.
_ENDED_KEPT = 1024


class ApiClient:
    """Calls ``RunService.ReportRunStatus`` on the API service."""

    def __init__(self, address: Callable[[], str], timeout: float = 10.0) -> None:
        self._address = address
        self._stub = LazyStub(address, run_pb2_grpc.RunServiceStub)
        self.timeout = timeout

    @property
    def address(self) -> str:
        """The API service's current address."""
        return self._address()

    def send(self, request: run_pb2.ReportRunStatusRequest) -> None:
        """Sends one report; raises ``grpc.RpcError`` when the API service does not answer."""
        self._stub.get().ReportRunStatus(request, timeout=self.timeout)

    def close(self) -> None:
        self._stub.close()


def report_request(
    snapshot: RunSnapshot, acknowledged: Mapping[str, Any] | None
) -> tuple[run_pb2.ReportRunStatusRequest, list[str] | None]:
    """The report of ``snapshot`` to send when the API service has acknowledged the tasks
    in ``acknowledged`` (task id -> ``TaskEntry.signature``; None: nothing known).

    Returns the request (without ``update_time``) and the ids of the tasks it carries
    when it is partial, or None when it is full.
    """
    changed = None if acknowledged is None or snapshot.final else changed_tasks(snapshot, acknowledged)
    request = run_pb2.ReportRunStatusRequest(
        run_id=snapshot.run_id,
        state=snapshot.state,  # type: ignore[arg-type]
        error=snapshot.error,
        task_details=snapshot.details(changed),
        partial=changed is not None,
    )
    if snapshot.outputs:
        request.outputs.CopyFrom(snapshot.outputs_proto())
    return request, changed


def changed_tasks(snapshot: RunSnapshot, acknowledged: Mapping[str, Any]) -> list[str] | None:
    """Ids of the tasks that are new or differ from ``acknowledged``; None when a task in
    ``acknowledged`` no longer exists (only a full report removes it)."""
    changed = []
    new = 0
    for task_id, entry in snapshot.tasks.items():
        known = acknowledged.get(task_id)
        # Unchanged entries keep their signature object: most tasks pass on identity.
        if known is not entry.signature and known != entry.signature:
            changed.append(task_id)
            new += known is None
    # Every acknowledged task is still there exactly when the counts add up.
    if len(acknowledged) + new != len(snapshot.tasks):
        return None
    return changed


@dataclass
class ReportStats:
    """What the reporter has delivered (acknowledged reports only)."""

    full: int = 0
    partial: int = 0
    #: Task details carried by those reports.
    tasks: int = 0
    #: Final reports not sent: the API service had acknowledged the same one.
    repeats: int = 0


@dataclass
class _Delivered:
    """The task signatures the API service at ``address`` acknowledged for a run."""

    address: str
    signatures: dict[str, Any] = field(default_factory=dict)


class StatusReporter:
    """A background thread that sends the newest status of every run marked dirty."""

    def __init__(
        self,
        client: ApiClient,
        status_of: Callable[[str], RunSnapshot | None],
        retry_seconds: float = 2.0,
    ) -> None:
        self._client = client
        self._status_of = status_of
        self._retry = retry_seconds
        self._dirty: dict[str, float] = {}  # run_id -> not before (monotonic)
        self._next_allowed: dict[str, float] = {}  # run_id -> earliest next report (monotonic)
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="status-reporter", daemon=True)
        # Only the reporter thread touches these two.
        self._delivered: dict[str, _Delivered] = {}
        self._stamps: dict[str, int] = {}  # run_id -> update_time of the last report sent (µs)
        # run_id -> (address, digest) of the final report acknowledged, newest last.
        self._ended: OrderedDict[str, tuple[str, bytes]] = OrderedDict()
        self.stats = ReportStats()

    def start(self) -> None:
        self._thread.start()

    def mark(self, run_id: str) -> None:
        """Schedules a report of ``run_id``'s current status."""
        with self._cond:
            not_before = max(time.monotonic(), self._next_allowed.get(run_id, 0.0))
            self._dirty[run_id] = min(self._dirty.get(run_id, not_before), not_before)
            self._cond.notify()

    def pending(self) -> set[str]:
        """Runs whose newest status has not been delivered yet."""
        with self._cond:
            return set(self._dirty)

    def stop(self, flush_timeout: float = 2.0) -> None:
        """Stops the thread after trying to deliver pending reports for up to ``flush_timeout``."""
        deadline = time.monotonic() + flush_timeout
        while self.pending() and time.monotonic() < deadline:
            time.sleep(0.05)
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _next(self) -> str | None:
        with self._cond:
            while not self._stopping:
                now = time.monotonic()
                due = [r for r, t in self._dirty.items() if t <= now]
                if due:
                    run_id = due[0]
                    del self._dirty[run_id]
                    return run_id
                wait = min((t - now for t in self._dirty.values()), default=None)
                self._cond.wait(timeout=wait)
            return None

    def _loop(self) -> None:
        while (run_id := self._next()) is not None:
            try:
                started = time.monotonic()
                snapshot = self._status_of(run_id)
                if snapshot is None:
                    self._forget(run_id)
                else:
                    self._deliver(snapshot)
                self._space_out(run_id, started, snapshot)
            except grpc.RpcError as err:
                log.warning("could not report run %s to the API service (%s); retrying", run_id, err.code())
                self._retry_later(run_id)
            except Exception:
                log.exception("could not report run %s; retrying", run_id)
                self._retry_later(run_id)

    def _deliver(self, snapshot: RunSnapshot) -> None:
        run_id = snapshot.run_id
        address = self._client.address
        delivered = self._delivered.get(run_id)
        if delivered is not None and delivered.address != address:
            delivered = None  # another API service may know nothing of the run
        request, changed = report_request(snapshot, None if delivered is None else delivered.signatures)
        ended = None
        if snapshot.final:
            body = request.SerializeToString(deterministic=True)  # before its time stamp
            ended = (address, hashlib.blake2b(body, digest_size=16).digest())
            if self._ended.get(run_id) == ended:
                self.stats.repeats += 1
                return
        request.update_time.CopyFrom(self._stamp(run_id))
        self._client.send(request)
        if ended is None:
            self._ended.pop(run_id, None)
        else:
            self._ended[run_id] = ended
            self._ended.move_to_end(run_id)
            while len(self._ended) > _ENDED_KEPT:
                self._ended.popitem(last=False)
        if changed is None:
            self.stats.full += 1
        else:
            self.stats.partial += 1
        self.stats.tasks += len(request.task_details)
        if snapshot.final:
            self._forget(run_id)
        elif delivered is None or changed is None:
            self._delivered[run_id] = _Delivered(address, {t: e.signature for t, e in snapshot.tasks.items()})
        else:
            for task_id in changed:
                delivered.signatures[task_id] = snapshot.tasks[task_id].signature

    def _stamp(self, run_id: str) -> timestamp_pb2.Timestamp:
        # The API service ignores a report older than the last one it applied; were the
        # clock to step back, a partial report it ignored would still count as delivered.
        micros = max(time.time_ns() // 1000, self._stamps.get(run_id, 0) + 1)
        self._stamps[run_id] = micros
        stamp = timestamp_pb2.Timestamp()
        stamp.FromMicroseconds(micros)
        return stamp

    def _forget(self, run_id: str) -> None:
        self._delivered.pop(run_id, None)
        self._stamps.pop(run_id, None)

    def _space_out(self, run_id: str, started: float, snapshot: RunSnapshot | None) -> None:
        done = time.monotonic()
        with self._cond:
            if snapshot is None or snapshot.final:
                self._next_allowed.pop(run_id, None)
            else:
                self._next_allowed[run_id] = done + min(_MAX_SPACING, _SPACING_FACTOR * (done - started))

    def _retry_later(self, run_id: str) -> None:
        with self._cond:
            if run_id not in self._dirty:
                self._dirty[run_id] = time.monotonic() + self._retry
