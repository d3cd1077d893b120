"""``stepwell-scheduler``: runs the scheduler as its own process.

Prints ``stepwell-scheduler listening on HOST:PORT`` once it serves (``--port 0`` picks a
free port) and stops cleanly on SIGTERM or SIGINT; running task processes are left alone
so a restarted scheduler adopts them.
"""

from __future__ import annotations

from stepwell.server.process import service_command
from stepwell_scheduler.app import SchedulerApp
from stepwell_scheduler.settings import SchedulerSettings

cli = service_command(
    "scheduler",
    "Serve Stepwell's scheduler (drives runs, one OS process per task) over gRPC.",
    SchedulerSettings,
    lambda settings, database_url: SchedulerApp(settings, database_url=database_url),
    default_port=8889,
)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point of ``stepwell-scheduler``."""
    cli.main(args=argv, prog_name="stepwell-scheduler")


if __name__ == "__main__":
    main()
