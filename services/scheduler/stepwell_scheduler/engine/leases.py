"""Run leases: which scheduler process drives which run.

Every unfinished run has a *lease*: an owner id (``sched_runs.lease_owner``) and an expiry
(``lease_expires_at``). Only the owner advances the run, dispatches its tasks and records
their results, and every such transaction re-checks ownership under a row lock
(``SELECT ... FOR UPDATE``), so a scheduler that lost its lease while it was stalled can no
longer change the run. The owner renews its leases every third of the lease duration
(a heartbeat thread). A scheduler claims runs that have no owner, whose lease expired, or
whose owner ran on this host and is dead (so a restart after ``kill -9`` resumes at once)
with ``SELECT ... FOR UPDATE SKIP LOCKED``: two schedulers never claim one run, and a
run locked by its live owner is skipped rather than waited for.

On SQLite (one scheduler) ``FOR UPDATE`` renders as nothing; the same code path applies.
Lease times come from the schedulers' clocks, which are assumed to agree to well within
a lease duration.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Connection, Update, literal_column, select, update

from stepwell.server import Database
from stepwell_scheduler.models import FINAL_STATES, RunRow

log = logging.getLogger(__name__)

_HOST = socket.gethostname()


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot ("" when unknown or gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return ""
    fields = stat[stat.rfind(b")") + 2 :].split()
    if len(fields) < 20 or fields[0] in (b"Z", b"X"):
        return ""
    return fields[19].decode()


def new_worker_id() -> str:
    """``host/pid/start-time/random``: unique among live schedulers, and recognisable as
    dead by another scheduler on the same host."""
    pid = os.getpid()
    return f"{_HOST}/{pid}/{_start_time(pid) or '0'}/{secrets.token_hex(3)}"


def owner_is_dead_here(owner: str) -> bool:
    """True when ``owner`` is a scheduler id of this host whose process no longer runs."""
    parts = owner.split("/")
    if len(parts) != 4 or parts[0] != _HOST or not parts[1].isdigit():
        return False
    pid = int(parts[1])
    if os.path.isdir("/proc"):
        started = _start_time(pid)
        return not started or (parts[2] != "0" and started != parts[2])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


class Leases:
    """This scheduler's leases on runs, in the database."""

    def __init__(self, database: Database, owner: str, seconds: float) -> None:
        self.db = database
        self.owner = owner
        self.seconds = seconds
        self._valid_until = 0.0  # monotonic time until which our leases certainly hold
        #: Counts the times the leases may have lapsed (a renewal came after their validity
        #: ran out: a stalled process, a lost database): what this scheduler remembers of
        #: a run from before a lapse may be another scheduler's business now.
        self.epoch = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: Told the rows a renewal wrote, whole (every column but the spec, and
        #: ``xmin``), on Postgres: the engine keeps run rows as last seen (``fences``).
        self.on_renewed: Callable[[list[dict[str, Any]]], None] | None = None

    def expiry(self) -> datetime:
        return datetime.now(timezone.utc) + timedelta(seconds=self.seconds)

    # ----- heartbeat --------------------------------------------------------------------

    def start_heartbeat(self, tick: Callable[[], None]) -> None:
        """Renews the leases every third of their duration, then calls ``tick``."""

        def beat() -> None:
            while not self._stop.wait(self.seconds / 3):
                try:
                    self.renew()
                except Exception as err:
                    log.warning("could not renew the scheduler's run leases: %s", err)
                tick()

        self._stop.clear()
        self._thread = threading.Thread(target=beat, name="scheduler-leases", daemon=True)
        self._thread.start()

    def stop_heartbeat(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def renew(self) -> None:
        """Extends every lease this scheduler holds on an unfinished run."""
        started = time.monotonic()
        with self.db.session() as s:
            renewed = self._renewing(
                s.connection(),
                update(RunRow)
                .where(RunRow.lease_owner == self.owner, RunRow.state.not_in(FINAL_STATES))
                .values(lease_expires_at=self.expiry()),
            )
        if renewed and self.on_renewed is not None:
            self.on_renewed(renewed)
        if started >= self._valid_until:
            self.epoch += 1
        self._valid_until = started + self.seconds

    def _renewing(self, connection: Connection, statement: Update) -> list[dict[str, Any]] | None:
        """Runs a renewal; on Postgres, when someone listens, returns the rows it wrote
        (see :attr:`on_renewed`), else None when it wrote any (the row count tells)."""
        if self.on_renewed is None or connection.dialect.name != "postgresql":
            count = connection.execute(statement).rowcount
            return None if count else []
        table = RunRow.__table__
        columns = [c for c in table.columns if c.key != "spec"]  # type: ignore[attr-defined]
        found = connection.execute(statement.returning(*columns, literal_column("xmin::text").label("xmin")))
        return [dict(row) for row in found.mappings()]

    def unbroken(self, epoch: int) -> bool:
        """Whether the leases have held without a lapse since ``epoch`` was read, and
        still hold long enough (:meth:`healthy`)."""
        return epoch == self.epoch and self.healthy()

    def hold_on(self, connection: Connection, run_ids: Iterable[str]) -> set[str]:
        """Renews the leases on ``run_ids`` that this scheduler still owns and returns those
        runs (the others were taken over). A compare-and-set inside the caller's
        transaction on ``connection``, so what the caller writes in it commits only
        together with the renewals; once committed, nobody can take those runs over for
        a whole lease, whatever this process's heartbeat did meanwhile."""
        held: set[str] = set()
        written: list[dict[str, Any]] = []
        for run_id in sorted(set(run_ids)):
            renewed = self._renewing(
                connection,
                update(RunRow)
                .where(RunRow.run_id == run_id, RunRow.lease_owner == self.owner)
                .values(lease_expires_at=self.expiry()),
            )
            if renewed is None or renewed:
                held.add(run_id)
                written += renewed or []
        if written and self.on_renewed is not None:
            # Not committed yet: should the caller roll back, the engine's fence finds
            # the version told here missing, and reads the run again.
            self.on_renewed(written)
        return held

    def healthy(self) -> bool:
        """Whether the leases will hold long enough to start a task safely (at least a
        third of their duration): a stalled scheduler stops dispatching before another
        one may take its runs over."""
        return time.monotonic() < self._valid_until - self.seconds / 3

    def release(self) -> None:
        """Lets other schedulers take this one's runs over at once (on a clean stop)."""
        with self.db.session() as s:
            s.execute(
                update(RunRow)
                .where(RunRow.lease_owner == self.owner, RunRow.state.not_in(FINAL_STATES))
                .values(lease_expires_at=datetime.now(timezone.utc) - timedelta(seconds=1))
            )

    # ----- claiming ---------------------------------------------------------------------

    def abandoned(self, owner: str, expires: datetime | None, dead: dict[str, bool] | None = None) -> bool:
        """Whether a run with this lease has nobody (alive) holding it but this
        scheduler: no owner, an expired lease, or an owner that died on this host.
        ``dead`` caches the owners looked up."""
        if owner == self.owner:
            return False
        stamp = datetime.now(timezone.utc)
        if not owner or expires is None or (utc(expires) or stamp) <= stamp:
            return True
        if dead is None:
            return owner_is_dead_here(owner)
        if owner not in dead:
            dead[owner] = owner_is_dead_here(owner)
        return dead[owner]

    def claim(self) -> list[str]:
        """Takes over unfinished runs nobody (alive) holds; returns their ids."""
        dead: dict[str, bool] = {}

        def claimable(owner: str, expires: datetime | None) -> bool:
            return self.abandoned(owner, expires, dead)

        with self.db.session() as s:
            seen = s.execute(
                select(RunRow.run_id, RunRow.lease_owner, RunRow.lease_expires_at).where(
                    RunRow.state.not_in(FINAL_STATES), RunRow.lease_owner != self.owner
                )
            ).all()
            wanted = [run_id for run_id, owner, expires in seen if claimable(owner, expires)]
            if not wanted:
                return []
            locked = s.scalars(
                select(RunRow)
                .where(RunRow.run_id.in_(wanted), RunRow.state.not_in(FINAL_STATES))
                .with_for_update(skip_locked=True)
            ).all()
            claimed = []
            for run in locked:
                if claimable(run.lease_owner, run.lease_expires_at):
                    if run.lease_owner:
                        log.info("taking over run %s from scheduler %s", run.run_id, run.lease_owner)
                    run.lease_owner, run.lease_expires_at = self.owner, self.expiry()
                    claimed.append(run.run_id)
        return claimed

    def still_owned(self, run_ids: Iterable[str]) -> set[str]:
        """Which of ``run_ids`` this scheduler still holds (unfinished or not)."""
        ids = list(run_ids)
        if not ids:
            return set()
        with self.db.session() as s:
            return set(s.scalars(select(RunRow.run_id).where(RunRow.run_id.in_(ids), RunRow.lease_owner == self.owner)))

    def cancel_requests(self) -> list[str]:
        """Runs this scheduler holds that someone asked to cancel and that are not canceling yet."""
        with self.db.session() as s:
            return list(
                s.scalars(
                    select(RunRow.run_id).where(
                        RunRow.lease_owner == self.owner,
                        RunRow.cancel_requested.is_(True),
                        RunRow.state.not_in([*FINAL_STATES, "CANCELING"]),
                    )
                )
            )
