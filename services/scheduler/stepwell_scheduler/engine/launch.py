"""Dispatching ready tasks: cache hits, importers and launcher processes.

A mixin of :class:`~stepwell_scheduler.engine.driver.Engine`; it reads the attributes the
engine sets up. A cache hit (kfp-facts §4.4) starts no process: the task reuses the cached
execution's outputs (the same artifact records), after checking that every reused
artifact still exists in the store.

Dispatch first *claims* queued tasks of runs this scheduler holds (``SELECT ... FOR UPDATE
SKIP LOCKED``, then PENDING -> RUNNING with no pid, and a compare-and-set renewal of the
run's lease unless the transaction has locked the run and seen a lease recent enough, in
one transaction; the engine makes it the transaction that also ends the tasks just
harvested and advances their DAGs). The tasks that transaction's advances create are
claimed as they are inserted (RUNNING in the INSERT), after the ones queued before; the
query is skipped while no task can have been queued since the last one saw the whole
queue (:meth:`LaunchMixin._queue_changed`). A task that surely needs a process gets
its attempt (number, folder) in the claim; one that may be a cache hit gets it after the
lookup missed, in a transaction of its own. Then, outside any transaction
(:mod:`.processes`): the task file is written, the process started, its pid stored, the
execution recorded in the metadata service (keyed by run, task and attempt), and the
execution id stored. The database always knows of
an attempt before its process can exist; what :mod:`.recovery` does after a crash
between any two of these steps relies on this order. Each step is taken for all the
tasks claimed together at once (one metadata call, one transaction), so a batch of short
tasks costs hardly more than one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from stepwell.ir.cache_key import fingerprint_for_task
from stepwell.storage import LocalStore, StoreRouter, is_s3_uri
from stepwell_scheduler.engine.dag import now
from stepwell_scheduler.engine.direct import DirectRows
from stepwell_scheduler.engine.harvest import new_rows
from stepwell_scheduler.engine.leases import utc
from stepwell_scheduler.engine.plan import IMPORTER
from stepwell_scheduler.engine.processes import ProcessMixin, _Prepared, task_key
from stepwell_scheduler.engine.provision import (
    execution_properties,
)
from stepwell_scheduler.engine.recovery import locked_runs
from stepwell_scheduler.metadata_client import (
    CONTAINER_EXECUTION,
    IMPORTER_EXECUTION,
)
from stepwell_scheduler.models import (
    CANCELING,
    FAILED,
    PENDING,
    RUNNING,
    SUCCEEDED,
    RunRow,
    TaskRow,
)

log = logging.getLogger(__name__)

#: ``Session.info`` key: the queue generation a claim's query saw whole (-1: not whole).
_SEEN = "stepwell.queue_seen"

class LaunchMixin(ProcessMixin):
    """Claiming queued tasks and starting them: cache hits, importers, processes (part of
    the engine)."""

    # The engine's attributes and methods it uses beyond ProcessMixin's.
    stores: StoreRouter
    direct: DirectRows
    _timers: bool
    #: Bumped by :meth:`_queue_changed`; ``_queue_seen`` is the generation whose queue
    #: a claim's query saw whole (-1: none).
    _queue_generations: Iterator[int]
    _queue_generation: int
    _queue_seen: int

    if TYPE_CHECKING:  # provided by the engine

        def _touch(self, run_id: str, qualified: str) -> None: ...
        def _wrote(self, run_id: str, qualified: str | None) -> None: ...

    def _claim(self, s: Session, already: int = 0) -> list[_Claim]:
        """Claims queued tasks of runs this scheduler holds, in the caller's transaction
        ``s``: PENDING -> RUNNING with no pid, and the lease of their runs renewed
        (compare-and-set) unless :meth:`_recent_leases` vouches for it. A task that will
        surely run a process (no importer, no cache lookup to make) gets its attempt here
        too: number, folder, log URI and start time, so the claim is all that stands
        between the commit and its process; its task file is built at once
        (:meth:`_build_early`)."""
        free = self.settings.max_parallel_tasks - len(self._handles) - already
        if free <= 0 or not self.leases.healthy():
            self._queue_changed()  # what this transaction queued waits for the next query
            return []
        stamp = now()
        # Tasks queued before this transaction first, oldest first; then the ones its
        # advances created, claimed as they are inserted (no UPDATE after the INSERT).
        found = self._query_queue(s, free, stamp)
        queued = [
            (row, run)
            for row, run in found
            # Changed in this transaction (not flushed): no longer queued.
            if row.state == PENDING and task_key(run.run_id, row.qualified_name) not in self._handles
        ]
        locked = locked_runs(s)
        # A new row the query returned was flushed before it (by a lazy load, say).
        seen = {id(row) for row, _run in found}
        inserted: set[int] = set()
        for row in new_rows(s):
            if row.state != PENDING or id(row) in seen or task_key(row.run_id, row.qualified_name) in self._handles:
                continue
            run = locked.get(row.run_id)
            if len(queued) < free and row.not_before is None and run is not None and run.state in (RUNNING, CANCELING):
                queued.append((row, run))
                inserted.add(id(row))
            else:
                self._queue_changed()  # left queued: the next claim looks for it
        leased = self._recent_leases(s)
        wanted = {run.run_id for _, run in queued}
        renew = wanted - leased.keys()
        if renew:
            # A renewal writes the run's row: a run taken unread is checked first.
            self.direct.check_fences(s)
        held = (wanted & leased.keys()) | self.leases.hold_on(s.connection(), renew)
        claimed: list[_Claim] = []
        for row, run in queued:
            if run.run_id not in held:
                continue  # taken over since the query: its new owner starts it
            attempt = None if row.kind == IMPORTER or self._may_hit_cache(run, row) else self._new_attempt(run, row)
            if attempt is not None:
                if run.run_id in leased:
                    attempt.claimed_at = leased[run.run_id]
                self._build_early(attempt)
            # The claim: nobody else starts this attempt; the previous attempt's
            # folder and execution no longer describe the task.
            row.state, row.pid, row.worker, row.task_dir, row.execution_id = RUNNING, 0, self.leases.owner, "", 0
            if attempt is not None:
                # Its execution is recorded once the process runs; until its id is
                # stored, a recovery looks the execution up by run, task and attempt.
                row.attempt, row.task_dir, row.log_uri = attempt.attempt, str(attempt.attempt_dir), attempt.log_uri
                row.started_at, row.lookup_execution = stamp, True
            if id(row) in inserted:
                # In the run's view already, as it is inserted: nothing to read back.
                self._wrote(run.run_id, row.qualified_name)
            else:
                self._touch(run.run_id, row.qualified_name)
            claimed.append(_Claim(row, run, attempt))
        return claimed

    def _query_queue(self, s: Session, free: int, stamp: datetime) -> Sequence[Any]:
        """``(row, run)`` of up to ``free`` tasks queued before the transaction ``s``, oldest
        first, row-locked. The query does not flush: the rows the transaction's advances
        created are not in the database yet. It is skipped (no rows) when the previous
        one saw the whole queue and nothing queued a task since (see
        :meth:`_queue_changed`) and no backoff can have ended."""
        generation = self._queue_generation
        if self._queue_seen == generation and not self._timers:
            return ()
        with s.no_autoflush:
            found = s.execute(
                select(TaskRow, RunRow)
                .join(RunRow, RunRow.run_id == TaskRow.run_id)
                .where(
                    TaskRow.state == PENDING,
                    RunRow.lease_owner == self.leases.owner,
                    RunRow.state.in_([RUNNING, CANCELING]),
                    or_(TaskRow.not_before.is_(None), TaskRow.not_before <= stamp),
                )
                .order_by(TaskRow.ready_at, TaskRow.id)
                .limit(free)
                .with_for_update(of=TaskRow, skip_locked=True)
            ).all()
        # Whether this query saw the whole queue counts once the claim commits (see
        # _claim_committed): a claim rolled back leaves its rows queued. Rows it skipped
        # because another transaction held them locked count as seen; a heartbeat's
        # _queue_changed looks again.
        s.info[_SEEN] = generation if len(found) < free else -1
        return found

    def _claim_committed(self, s: Session) -> None:
        """After the transaction ``s`` of a :meth:`_claim` committed: what its queue query
        saw counts (a later claim may skip the query)."""
        seen = s.info.get(_SEEN)
        if seen is not None:
            self._queue_seen = seen

    def _queue_changed(self) -> None:
        """Notes that tasks may have been queued (PENDING) outside the transactions that
        claim what they create: a retry, a takeover, a run's first advance. The next
        claim queries the queue. Any thread may call it, once the change is committed."""
        self._queue_generation = next(self._queue_generations)

    def _recent_leases(self, s: Session) -> dict[str, float]:
        """Runs this transaction holds locked whose lease (as the heartbeat last renewed
        it) will last long enough for a claim: renewing it again would change nothing that
        matters. Each with the monotonic time the lease counts as renewed at, which is
        what :meth:`_still_held` measures a claim's age from."""
        clock, stamp = time.monotonic(), now()
        # A third of a lease between heartbeats, and a margin before the next one is due.
        enough = self.leases.seconds * 0.7
        recent: dict[str, float] = {}
        for run_id, run in locked_runs(s).items():
            expires = utc(run.lease_expires_at) if run is not None else None
            if expires is None:
                continue
            left = (expires - stamp).total_seconds()
            if enough <= left <= self.leases.seconds:
                recent[run_id] = clock - (self.leases.seconds - left)
        return recent

    def _start(self, claimed: list[_Claim]) -> set[str]:
        """Starts claimed tasks (after the claim committed): importers and cache hits
        without a process, the others with one. Returns the runs touched."""
        if claimed:
            self.failpoint("claimed", len(claimed))
        touched: set[str] = set()
        ready: list[_Prepared] = []
        missed: list[_Prepared] = []
        for c in claimed:
            touched.add(c.run.run_id)
            if c.attempt is not None:
                ready.append(c.attempt)
            elif c.row.kind == IMPORTER:
                self._run_importer(c.run, c.row)
                self.wake(c.run.run_id)
            elif self._try_cache(c.run, c.row):
                self.wake(c.run.run_id)
            else:
                missed.append(self._new_attempt(c.run, c.row))
        if missed:
            try:
                held = self._store_attempts(missed)
            except Exception as err:
                for p in missed:
                    self._fail_start(p.run, p.row, 0, err)
            else:
                ready += self._only_held(missed, held)
        self._launch(ready)
        return touched

    # ----- caching ----------------------------------------------------------------------

    def caching_enabled(self, run: RunRow, spec: dict[str, Any]) -> bool:
        """Server setting, run option and the task's ``cachingOptions.enableCache``."""
        if not self.settings.cache_enabled or (run.options or {}).get("disable_cache"):
            return False
        return bool((spec.get("cachingOptions") or {}).get("enableCache"))

    def _try_cache(self, run: RunRow, row: TaskRow) -> bool:
        """Completes ``row`` from the cache when a usable entry exists; True on a hit."""
        if row.fingerprint or row.attempt:
            return False  # the fingerprint was computed (and missed) before, or this is a retry
        plan = self._plan(run)
        task = plan.task(row.qualified_name)
        if not self.caching_enabled(run, task.spec):
            return False
        fingerprint = fingerprint_for_task(task.spec, task.component, plan.executor(task.component), row.inputs or {})
        # Stored with the launch on a miss, with the result on a hit: a crash in between
        # looks the entry up again rather than taking the task for a known miss.
        row.fingerprint = fingerprint
        try:
            entry = self.metadata.lookup_cache(run.pipeline_name, run.namespace, fingerprint)
        except Exception as err:
            log.warning("cache lookup for task %s failed: %s", row.qualified_name, err)
            return False
        if entry is None:
            return False
        outputs = entry["outputs"]
        missing = self._missing_artifacts(outputs)
        if missing:
            log.info("cache entry for %s refused: artifact %s no longer exists", row.qualified_name, missing)
            return False
        execution_id = self._start_execution(run, row, CONTAINER_EXECUTION, 0, "")
        if execution_id:
            try:
                self.metadata.record_cached(execution_id, outputs.get("artifacts") or {}, entry["execution_id"], fingerprint)
                self.metadata.finish_execution(execution_id, "CACHED", outputs.get("parameters") or {})
            except Exception as err:
                log.warning("could not record the cached execution of %s: %s", row.qualified_name, err)
        self.failpoint("cache-recorded")
        self._finish_row(
            run.run_id,
            row.qualified_name,
            SUCCEEDED,
            outputs=outputs,
            fields={
                "cached": True,
                "execution_id": execution_id,
                "fingerprint": fingerprint,
                "started_at": now(),
                "lookup_execution": False,
            },
        )
        return True

    def _missing_artifacts(self, outputs: dict[str, Any]) -> str:
        for records in (outputs.get("artifacts") or {}).values():
            for record in records:
                uri = str(record.get("uri") or "")
                if "sha256" in record and not record["sha256"]:
                    continue  # nothing was ever stored (e.g. Metrics live in metadata only)
                try:
                    if uri and not self.stores.for_uri(uri).exists(uri):
                        return uri
                except Exception:
                    return uri
        return ""

    def _may_hit_cache(self, run: RunRow, row: TaskRow) -> bool:
        """Whether starting ``row`` must first look for a cache entry (see :meth:`_try_cache`)."""
        if row.fingerprint or row.attempt:
            return False
        return self.caching_enabled(run, self._plan(run).task(row.qualified_name).spec)

    def _start_execution(
        self, run: RunRow, row: TaskRow, execution_type: str, attempt: int, image: str, lookup: bool | None = None
    ) -> int:
        """Records the attempt's execution (RUNNING) and its input events; 0 on failure.

        With ``lookup`` (default: the row's ``lookup_execution``), a task queued again
        after a takeover first looks for the execution a killed scheduler may have
        created for the same run, task and attempt, and reuses it; any other execution of
        the task still RUNNING belongs to a lost attempt (the task is not running now)
        and is closed as FAILED.
        """
        try:
            if row.lookup_execution if lookup is None else lookup:
                found = self.metadata.task_executions(run.run_context_id, row.qualified_name, run.run_id)
                for other, (lost, running) in found.items():
                    if other != attempt and running:
                        self.metadata.finish_execution(lost, "FAILED", {}, error="a lost attempt: the scheduler stopped")
                if attempt in found:
                    execution_id = found[attempt][0]
                    self.metadata.record_inputs(execution_id, (row.inputs or {}).get("artifacts") or {})
                    return execution_id
            execution_id = self.metadata.start_execution(
                execution_type=execution_type,
                name=row.qualified_name,
                context_ids=[run.pipeline_context_id, run.run_context_id],
                inputs=(row.inputs or {}).get("parameters") or {},
                custom_properties=execution_properties(run, row, attempt, image),
            )
            self.metadata.record_inputs(execution_id, (row.inputs or {}).get("artifacts") or {})
            return execution_id
        except Exception as err:
            log.warning("could not record task %s in the metadata service: %s", row.qualified_name, err)
            return 0

    def _run_importer(self, run: RunRow, row: TaskRow) -> None:
        """Importers need no process: the artifact already exists; record it and finish."""
        plan = self._plan(run)
        task = plan.task(row.qualified_name)
        spec = plan.executor(task.component).get("importer") or {}
        source = spec.get("artifactUri") or {}
        uri = source.get("constant")
        if uri is None and source.get("runtimeParameter"):
            uri = ((row.inputs or {}).get("parameters") or {}).get(source["runtimeParameter"])
        if not isinstance(uri, str) or not uri:
            self._finish_row(run.run_id, row.qualified_name, FAILED, error="the importer has no artifact URI")
            return
        if uri.startswith("file://"):
            uri = uri[len("file://") :]
        title = str((spec.get("typeSchema") or {}).get("schemaTitle") or "system.Artifact")
        record: dict[str, Any] = {"uri": uri, "metadata": dict(spec.get("metadata") or {}), "schema_title": title}
        try:
            info = LocalStore().stat(uri) if not is_s3_uri(uri) and uri.startswith("/") else None
            record["size"] = info.size if info else 0
        except Exception:
            record["size"] = 0
        execution_id = self._start_execution(run, row, IMPORTER_EXECUTION, 1, "")
        outputs = {"parameters": {}, "artifacts": {"artifact": [record]}}
        self._record_outputs(run, execution_id, outputs, SUCCEEDED)
        self._finish_row(
            run.run_id,
            row.qualified_name,
            SUCCEEDED,
            outputs=outputs,
            fields={"started_at": now(), "execution_id": execution_id, "attempt": 1, "lookup_execution": False},
        )




@dataclass
class _Claim:
    """A task claimed in a transaction; ``attempt`` is set when it surely runs a process."""

    row: TaskRow
    run: RunRow
    attempt: _Prepared | None
