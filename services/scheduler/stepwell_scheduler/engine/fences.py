"""Runs vouched for by the row version read last, checked at the write (Postgres).

Every transaction that changes a run's tasks holds the run's row lock, and checks the
lease it reads there (see :mod:`.leases`). Taking that lock first, with ``SELECT ... FOR
UPDATE``, is a round trip of its own at the head of the engine's hot transaction (and,
with psycopg2, a ``BEGIN`` before it): on a busy 2-vCPU machine about a third of a
chain's link on Postgres.

A *fence* takes the lock last instead. The engine keeps each run's row as it last read it
locked, with the row's version (Postgres's ``xmin``: the transaction that wrote that
version). In its hot transaction it may take the run from there, unread; the statement
that writes the transaction's task rows then locks the run's row and counts it only if
its version is still the one read (:func:`fence_cte`). A changed version fails the fence:
the transaction rolls back (:class:`FenceFailed`) and the engine does it again the old
way. Anything the ORM would write first in that transaction checks the fences before it
(so the run's lock still comes before the writes), and so does a claim's lease renewal.

Why an unchanged version is as good as the lock taken first: every writer of a run's row
makes a new version, and the writers of a run's tasks other than this engine's own
thread write the run's row too (RetryRun and CancelRun; another scheduler, which must
take the run over first, writing its lease owner). What the engine's own thread writes
to a task outside the step (pids, execution ids, outbox flags, retries) it knows. So
this holds only while every other writer of a run's tasks also writes the run's row,
and every write of this scheduler's to a run's tasks happens on the engine's thread.

Lease renewals write the run's row (the heartbeat's, every third of a lease, and a
claim's): they tell the engine the rows they wrote, whole, so that its runs stay
current. A run the ORM writes is forgotten (a mapper event).

Nothing changes on SQLite, where one scheduler writes and locking is the file's.
"""

from __future__ import annotations

import copy
import threading
import weakref
from collections.abc import Iterable
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from stepwell_scheduler.models import RunRow

#: ``Session.info`` key: this transaction may take runs from :class:`RunVersions`.
FENCING = "stepwell.fencing"
#: ``Session.info`` key: ``{run_id: xmin}`` of the runs taken so, not yet checked.
FENCES = "stepwell.fences"
#: ``Session.info`` key: what checks them (``DirectRows.check_fences``), before the ORM
#: writes anything in that transaction.
CHECK = "stepwell.check_fences"


class FenceFailed(Exception):
    """A run taken unread changed since it was read: the transaction must be done again
    with the runs read and locked first."""


class RunVersions:
    """The row of each run as last read locked (its column values and ``xmin``). A run
    the ORM writes (in any session of the process) is forgotten: its version is new."""

    def __init__(self) -> None:
        self._rows: dict[str, tuple[tuple[Any, ...], str]] = {}
        self._lock = threading.Lock()
        with _KEPT_LOCK:
            _KEPT.add(self)

    def put(self, run_id: str, values: tuple[Any, ...], xmin: str) -> None:
        """Keeps a copy of ``values`` (the caller's objects may change)."""
        kept = copy.deepcopy(values)
        with self._lock:
            self._rows[run_id] = (kept, xmin)

    def get(self, run_id: str) -> tuple[tuple[Any, ...], str] | None:
        """A copy of the run's values (the caller may change them) and their version."""
        with self._lock:
            found = self._rows.get(run_id)
        if found is None:
            return None
        values, xmin = found
        return copy.deepcopy(values), xmin

    def renewed(self, rows: Iterable[tuple[str, tuple[Any, ...], str]]) -> None:
        """A lease renewal wrote ``(run_id, values, xmin)``: the whole row as written, so
        that nothing written since the version kept is taken for unchanged. Runs not
        kept are not added."""
        with self._lock:
            for run_id, values, xmin in rows:
                if run_id in self._rows:
                    self._rows[run_id] = (copy.deepcopy(values), xmin)

    def forget(self, run_id: str) -> None:
        with self._lock:
            self._rows.pop(run_id, None)

    def __len__(self) -> int:
        return len(self._rows)


def fence_cte(table: str, count: int) -> str:
    """The ``fence`` query of a statement checking ``count`` runs: their rows, locked,
    that still have the version read (parameters ``f_r<i>`` and ``f_x<i>``)."""
    ids = ", ".join(f"%(f_r{i})s" for i in range(count))
    pairs = ", ".join(f"(%(f_r{i})s, %(f_x{i})s)" for i in range(count))
    return (
        f"fence AS (SELECT run_id FROM {table} WHERE run_id IN ({ids}) "
        f"AND (run_id, xmin::text) IN ({pairs}) FOR UPDATE)"
    )


def fence_params(fences: dict[str, str]) -> dict[str, Any]:
    """The parameters of :func:`fence_cte` for ``{run_id: xmin}``."""
    bound: dict[str, Any] = {}
    for i, (run_id, xmin) in enumerate(sorted(fences.items())):
        bound[f"f_r{i}"], bound[f"f_x{i}"] = run_id, xmin
    return bound


_KEPT: weakref.WeakSet[RunVersions] = weakref.WeakSet()
_KEPT_LOCK = threading.Lock()


@event.listens_for(RunRow, "after_update")
@event.listens_for(RunRow, "after_delete")
def _written(_mapper: Any, _connection: Any, run: RunRow) -> None:
    with _KEPT_LOCK:
        kept = list(_KEPT)
    for versions in kept:
        versions.forget(run.run_id)


@event.listens_for(Session, "before_flush")
def _check_first(session: Session, _context: Any, _instances: Any) -> None:
    """The ORM is about to write in a transaction that took runs unread: their fences
    are checked first, so that the run's lock comes before the writes (as it did when it
    was taken first), and a run this transaction ends is not taken for changed by
    someone else once its own write made a new version."""
    if session.info.get(FENCES) and (session.new or session.dirty or session.deleted):
        check = session.info.get(CHECK)
        if check is not None:
            check(session)
