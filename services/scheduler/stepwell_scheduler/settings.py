"""Settings of the scheduler, read from ``STEPWELL_*`` environment variables."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field

from stepwell.server import ServiceSettings


def _default_parallelism() -> int:
    # Short tasks dominate the engine's per-task cost unless their ends and starts are
    # handled in batches, and a batch is at most this many tasks: 16 no-op tasks at once
    # on 2 cores finish a 1,000-task loop in about half the time 4 do (benchmarks/README.md).
    return max(16, (os.cpu_count() or 1) * 4)


class SchedulerSettings(ServiceSettings):
    """What the scheduler reads at start-up.

    Beyond :class:`~stepwell.server.ServiceSettings` (``STEPWELL_HOME``,
    ``STEPWELL_DATABASE_URL``, ``STEPWELL_ARTIFACT_ROOT``, ``STEPWELL_S3_*``,
    ``STEPWELL_API_ADDRESS``, ``STEPWELL_METADATA_ADDRESS``, ...):

    * ``STEPWELL_SCHEDULER_DATABASE_URL`` — this service's database, overriding
      ``STEPWELL_DATABASE_URL`` (default: ``sqlite:///$STEPWELL_HOME/scheduler.db``);
    * ``STEPWELL_SCHEDULER_HOST`` / ``STEPWELL_SCHEDULER_PORT`` — where the gRPC server
      listens (default ``127.0.0.1:8889``);
    * ``STEPWELL_MAX_PARALLEL_TASKS`` — task processes running at once, over all runs;
    * ``STEPWELL_WORK_DIR`` — task files, scratch folders and logs (default
      ``$STEPWELL_HOME/scheduler``);
    * ``STEPWELL_REPORT_RETRY_SECONDS`` — delay before re-sending a failed status report;
    * ``STEPWELL_LOCAL_START_METHOD`` — how the local executor starts task processes:
      ``fork`` (default: forked by a fork server that has the launcher pre-imported) or
      ``spawn`` (a fresh ``python -m stepwell.runtime.launcher`` per task);
    * ``STEPWELL_LOCAL_INLINE_PYTHON`` — with ``fork``, run lightweight components'
      ``python3 -m stepwell.runtime.executor`` / ``kfp.dsl.executor_main`` in the task's
      own process, from the pre-imported interpreter, rather than a second interpreter
      (default true; see :mod:`stepwell_scheduler.executors.inprocess`).
    * ``STEPWELL_SCHEDULER_LEASE_SECONDS`` — how long a scheduler's claim on a run holds
      without renewal (renewed every third of it); when a scheduler dies, another one on
      the same database takes its runs over after this (at once when the dead one ran on
      the same host);
    * ``STEPWELL_SCHEDULER_WORKER_ID`` — this scheduler's lease owner id (default: host,
      pid, process start time and a random suffix; must be unique among live schedulers);
    * ``STEPWELL_SCHEDULER_PREPARED_STATEMENTS`` — on Postgres, prepare the engine's
      hot write once per connection (default true); false behind a connection pooler
      that does not keep prepared statements (PgBouncer in transaction mode);
    * ``STEPWELL_SCHEDULER_FAILPOINTS`` — for durability tests only: crash points
      (:mod:`stepwell_scheduler.engine.failpoints`).
    """

    scheduler_database_url: str = ""
    scheduler_host: str = "127.0.0.1"
    scheduler_port: int = 8889
    max_parallel_tasks: int = _default_parallelism()
    work_dir: Path | None = None
    report_retry_seconds: float = 2.0
    cache_enabled: bool = True
    local_start_method: Literal["fork", "spawn"] = "fork"
    local_inline_python: bool = True
    scheduler_lease_seconds: float = Field(default=15.0, gt=0)
    scheduler_worker_id: str = ""
    scheduler_prepared_statements: bool = True
    scheduler_failpoints: str = ""

    def scheduler_db_url(self) -> str:
        """The database this service uses."""
        return self.scheduler_database_url or self.database_url_for("scheduler")

    def resolved_work_dir(self) -> Path:
        """Where task files, scratch folders and local logs go."""
        return (self.work_dir or self.home / "scheduler").expanduser()
