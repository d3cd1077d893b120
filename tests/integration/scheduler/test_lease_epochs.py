"""Leases count their lapses: a renewal after the leases' validity ran out starts a new
epoch, and what the engine remembers from an older epoch is not trusted (it reads the
run back). A real database (SQLite), real time."""

from __future__ import annotations

import time
from pathlib import Path

from stepwell.server import Database, upgrade
from stepwell_scheduler.app import MIGRATIONS_DIR, VERSION_TABLE
from stepwell_scheduler.engine.leases import Leases


def test_a_renewal_after_a_lapse_starts_a_new_epoch(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'scheduler.db'}")
    try:
        upgrade(db.engine, MIGRATIONS_DIR, VERSION_TABLE)
        leases = Leases(db, "host/1/1/abc", seconds=0.6)
        leases.renew()
        first = leases.epoch
        assert leases.unbroken(first)
        leases.renew()  # in time: the same epoch
        assert leases.epoch == first and leases.unbroken(first)
        time.sleep(0.45)  # within the last third of the lease: not healthy, same epoch
        assert leases.epoch == first and not leases.unbroken(first)
        time.sleep(0.25)  # the validity ran out
        leases.renew()
        assert leases.epoch == first + 1
        assert leases.unbroken(first + 1) and not leases.unbroken(first)
    finally:
        db.dispose()
