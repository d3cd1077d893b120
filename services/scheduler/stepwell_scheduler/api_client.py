"""Reports run status to the API service, in the background, retrying until it is heard.

Reports for the same run coalesce: only the newest status is sent. A report carries the
whole run, so its cost grows with the number of tasks; after each report of a run, the
next one waits for a few times what the last one cost (at most a second), which keeps
reporting a small share of the work for a run of thousands of tasks and costs a run of a
few tasks nothing. A failed report never affects the run; it is retried after
``retry_seconds``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import grpc
from google.protobuf import timestamp_pb2

from stepwell.v1 import common_pb2, run_pb2, run_pb2_grpc, scheduler_pb2
from stepwell_scheduler.peers import LazyStub

log = logging.getLogger(__name__)

_FINAL = frozenset({common_pb2.SUCCEEDED, common_pb2.FAILED, common_pb2.CANCELED, common_pb2.SKIPPED})
#: The gap after a report, as a multiple of what the report cost, and its upper bound.
_SPACING_FACTOR = 3.0
_MAX_SPACING = 1.0


class ApiClient:
    """Calls ``RunService.ReportRunStatus`` on the API service."""

    def __init__(self, address: Callable[[], str], timeout: float = 10.0) -> None:
        self._stub = LazyStub(address, run_pb2_grpc.RunServiceStub)
        self.timeout = timeout

    def report(self, status: scheduler_pb2.RunStatus) -> None:
        """Sends one status; raises ``grpc.RpcError`` when the API service does not answer."""
        now = timestamp_pb2.Timestamp()
        now.GetCurrentTime()
        request = run_pb2.ReportRunStatusRequest(
            run_id=status.run_id,
            state=status.state,
            error=status.error,
            task_details=status.task_details,
            outputs=status.outputs,
            update_time=now,
        )
        self._stub.get().ReportRunStatus(request, timeout=self.timeout)

    def close(self) -> None:
        self._stub.close()


class StatusReporter:
    """A background thread that sends the newest status of every run marked dirty."""

    def __init__(
        self,
        client: ApiClient,
        status_of: Callable[[str], scheduler_pb2.RunStatus | None],
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
                status = self._status_of(run_id)
                if status is not None:
                    self._client.report(status)
                self._space_out(run_id, started, status)
            except grpc.RpcError as err:
                log.warning("could not report run %s to the API service (%s); retrying", run_id, err.code())
                self._retry_later(run_id)
            except Exception:
                log.exception("could not report run %s; retrying", run_id)
                self._retry_later(run_id)

    def _space_out(self, run_id: str, started: float, status: scheduler_pb2.RunStatus | None) -> None:
        done = time.monotonic()
        with self._cond:
            if status is None or status.state in _FINAL:
                self._next_allowed.pop(run_id, None)
            else:
                self._next_allowed[run_id] = done + min(_MAX_SPACING, _SPACING_FACTOR * (done - started))

    def _retry_later(self, run_id: str) -> None:
        with self._cond:
            if run_id not in self._dirty:
                self._dirty[run_id] = time.monotonic() + self._retry
