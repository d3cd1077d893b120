"""Advancing a run's DAG from its *view*: the run's task rows as this engine last wrote or
read them.

A mixin of :class:`~stepwell_scheduler.engine.driver.Engine`. A view is loaded whole once,
then each step reloads only the rows this engine changed since (harvests, claims,
retries; ``_touch``); a cancellation, a retry, a takeover or any failed step drops it, and
the next step loads it whole again. Only the DAG scopes holding a reloaded row are
walked (:class:`~stepwell_scheduler.engine.dag.DagAdvancer`). A run still PENDING first
gets its metadata contexts, recorded outside any transaction.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from stepwell.server import Database
from stepwell_scheduler.engine.dag import DagAdvancer
from stepwell_scheduler.engine.direct import DirectRows
from stepwell_scheduler.engine.failpoints import Failpoints
from stepwell_scheduler.engine.harvest import new_rows, read_rows
from stepwell_scheduler.engine.loops import LoopProgress
from stepwell_scheduler.engine.plan import PipelinePlan
from stepwell_scheduler.engine.provision import run_root
from stepwell_scheduler.metadata_client import MetadataClient
from stepwell_scheduler.models import (
    CANCELED,
    FAILED,
    FINAL_STATES,
    PENDING,
    RUNNING,
    RunRow,
    TaskRow,
)

log = logging.getLogger(__name__)

#: :meth:`AdvanceMixin._advance_in`'s answers besides a final state or None.
_GONE = "gone"
_NEEDS_CONTEXTS = "needs-contexts"


class AdvanceMixin:
    """Advancing runs (part of the engine)."""

    db: Database
    direct: DirectRows
    metadata: MetadataClient
    failpoint: Failpoints
    _plans: dict[str, PipelinePlan]
    _views: dict[str, dict[str, TaskRow]]
    _touched: dict[str, set[str]]
    _loops: dict[str, dict[str, LoopProgress]]
    _task_dirs: dict[str, set[str]]
    _task_file_runs: set[str]
    _stale: set[str]
    _owned: set[str]
    _canceling: set[str]
    _lock: threading.Lock

    if TYPE_CHECKING:  # provided by the engine and the recovery mixin

        def _plan(self, run: RunRow) -> PipelinePlan: ...
        def _wrote(self, run_id: str, qualified: str | None) -> None: ...
        def _owned_run(self, s: Session, run_id: str) -> RunRow | None: ...
        def _queue_changed(self) -> None: ...

    def _forget_view(self, run_id: str) -> None:
        """Forgets what this engine knows of the run's rows, and that it knows which it wrote."""
        self._forget_reads(run_id)
        self._wrote(run_id, None)

    def _forget_reads(self, run_id: str) -> None:
        """Forgets the run's rows as read (the next advance reads them whole), keeping
        the names of the rows written since the last status report: a step that wrote
        nothing and is done again names the same rows."""
        self.direct.versions.forget(run_id)
        self._views.pop(run_id, None)
        self._touched.pop(run_id, None)
        self._loops.pop(run_id, None)

    def _view(self, s: Session, run_id: str) -> tuple[dict[str, TaskRow], set[str] | None]:
        """The run's task rows: loaded whole the first time (and after a takeover, a
        retry or a cancellation), then only the rows this engine touched since; and the
        DAG scopes holding a touched row (None: all of them, after a whole load)."""
        with self._lock:
            stale = run_id in self._stale
            self._stale.discard(run_id)
        view = None if stale else self._views.get(run_id)
        touched = self._touched.pop(run_id, set())
        if view is None:
            view = {r.qualified_name: r for r in s.scalars(select(TaskRow).where(TaskRow.run_id == run_id))}
            self._views[run_id] = view
            return view, None
        names = sorted(touched)
        read = read_rows(s)
        unread = []
        for name in names:
            row = read.get((run_id, name))
            if row is None:
                unread.append(name)
            else:
                view[name] = row
        for i in range(0, len(unread), 500):
            chunk = unread[i : i + 500]
            query = select(TaskRow).where(TaskRow.run_id == run_id, TaskRow.qualified_name.in_(chunk))
            for fresh in s.scalars(query):
                view[fresh.qualified_name] = fresh
        scopes: set[str] = set()
        for name in names:
            row = view.get(name)
            while row is not None and row.parent and row.parent not in scopes:
                scopes.add(row.parent)
                row = view.get(row.parent)
        return view, scopes

    def _advance(self, run_id: str) -> None:
        try:
            self._advance_run(run_id)
        except BaseException:
            self._forget_view(run_id)
            raise

    def _advance_run(self, run_id: str) -> None:
        for _ in range(2):
            with self.db.session() as s:
                final = self._advance_in(s, run_id)
            if final != _NEEDS_CONTEXTS:
                break
            with self.db.session() as s:
                run = self._owned_run(s, run_id)
            if run is None:
                return
            pipeline_ctx, run_ctx = self._contexts(run)
            with self.db.session() as s:
                fresh = self._owned_run(s, run_id)
                if fresh is None:
                    return
                if fresh.state == PENDING:
                    fresh.state = RUNNING
                fresh.pipeline_context_id, fresh.run_context_id = pipeline_ctx, run_ctx
        else:
            return
        # Tasks it queued are claimed by a query (no claim shares its transaction).
        self._queue_changed()
        if final != _GONE:
            self._advanced(run_id, final)

    def _advance_in(self, s: Session, run_id: str) -> str | None:
        """Advances the run's DAG in the transaction ``s``; returns the run's final state
        when it ended, None while it runs, ``_GONE`` when it is not this engine's to drive
        (or already over), and ``_NEEDS_CONTEXTS`` for a PENDING run (see :meth:`_advance_run`)."""
        try:
            run = self._owned_run(s, run_id)
            if run is None or run.state in FINAL_STATES:
                self._forget_view(run_id)
                return _GONE
            if run.state == PENDING:
                return _NEEDS_CONTEXTS
            rows, scopes = self._view(s, run_id)

            created = new_rows(s)

            def add(row: TaskRow) -> None:
                if inspect(row).transient:  # created by this advance, not changed
                    created.append(row)
                s.add(row)
                self._wrote(run_id, row.qualified_name)

            advancer = DagAdvancer(
                run=run,
                plan=self._plan(run),
                rows=rows,
                add=add,
                dirty=scopes,
                loops=self._loops.setdefault(run_id, {}),
            )
            final = advancer.advance()
            timed_out = str((run.options or {}).get("timed_out") or "")
            if final == CANCELED and timed_out:
                run.state, run.error, final = FAILED, timed_out, FAILED
            return final
        except BaseException:
            self._forget_view(run_id)
            raise

    def _advanced(self, run_id: str, final: str | None) -> None:
        """After a run's advance committed: forgets an ended run."""
        self.failpoint("advanced")
        if final is not None:
            self._plans.pop(run_id, None)
            self._task_dirs.pop(run_id, None)  # a retry recreates rows: look again
            self._task_file_runs.discard(run_id)
            self._forget_view(run_id)
            self._owned.discard(run_id)
            self._canceling.discard(run_id)
            log.info("run %s ended %s", run_id, final)

    def _contexts(self, run: RunRow) -> tuple[int, int]:
        try:
            return self.metadata.run_contexts(
                run.pipeline_name,
                run.run_id,
                run_root(run.pipeline_root, run.pipeline_name, run.run_id),
                run.namespace,
            )
        except Exception as err:
            log.warning("could not record run %s in the metadata service: %s", run.run_id, err)
            return 0, 0
