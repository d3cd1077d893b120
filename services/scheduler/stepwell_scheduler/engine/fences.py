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
its version is still the one read (:func:`fence_cte`). Every writer of a run's row makes
a new version, and every writer of a run's tasks writes the run's row (a retry, a cancel,
a takeover, the lease heartbeat): so an unchanged version means that nothing the engine
decided from is out of date, and the lock holds until the commit, as a lock taken first
would. A changed version (most often the heartbeat's renewal) fails the fence: the
transaction rolls back (:class:`FenceFailed`) and the engine does it again the old way.

Nothing changes on SQLite, where one scheduler writes and locking is the file's.
"""

from __future__ import annotations

import copy
import threading
import weakref
from collections.abc import Iterable
from typing import Any

from sqlalchemy import event

from stepwell_scheduler.models import RunRow

#: ``Session.info`` key: this transaction may take runs from :class:`RunVersions`.
FENCING = "stepwell.fencing"
#: ``Session.info`` key: ``{run_id: xmin}`` of the runs taken so, not yet checked.
FENCES = "stepwell.fences"


class FenceFailed(Exception):
    """A run taken unread changed since it was read: the transaction must be done again
    with the runs read and locked first."""


class RunVersions:
    """The row of each run as last read locked (its column values and ``xmin``). A run
    the ORM writes (in any session of the process) is forgotten: its version is new."""

    def __init__(self) -> None:
        self._rows: dict[str, tuple[tuple[Any, ...], str]] = {}
        self._lock = threading.Lock()
        _KEPT.add(self)

    def put(self, run_id: str, values: tuple[Any, ...], xmin: str) -> None:
        with self._lock:
            self._rows[run_id] = (values, xmin)

    def get(self, run_id: str) -> tuple[tuple[Any, ...], str] | None:
        """A copy of the run's values (the caller may change them) and their version."""
        with self._lock:
            found = self._rows.get(run_id)
        if found is None:
            return None
        values, xmin = found
        return copy.deepcopy(values), xmin

    def renewed(self, changes: Iterable[tuple[str, Any, str]], column: int) -> None:
        """The lease heartbeat wrote ``(run_id, value, xmin)``: the value of the column at
        index ``column``, in a new version. Runs not kept are not added."""
        with self._lock:
            for run_id, value, xmin in changes:
                found = self._rows.get(run_id)
                if found is not None:
                    values = list(found[0])
                    values[column] = value
                    self._rows[run_id] = (tuple(values), xmin)

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


@event.listens_for(RunRow, "after_update")
@event.listens_for(RunRow, "after_delete")
def _written(_mapper: Any, _connection: Any, run: RunRow) -> None:
    for versions in list(_KEPT):
        versions.forget(run.run_id)
