"""``stepwell-metadata``: runs the metadata service as its own process.

Prints ``stepwell-metadata listening on HOST:PORT`` once it serves (``--port 0`` picks a
free port) and stops cleanly on SIGTERM or SIGINT.
"""

from __future__ import annotations

from stepwell.server.process import service_command
from stepwell_metadata.app import MetadataApp
from stepwell_metadata.settings import MetadataSettings

cli = service_command(
    "metadata",
    "Serve Stepwell's metadata service (contexts, executions, artifacts, lineage) over gRPC.",
    MetadataSettings,
    lambda settings, database_url: MetadataApp(settings, database_url=database_url),
    default_port=8890,
)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point of ``stepwell-metadata``."""
    cli.main(args=argv, prog_name="stepwell-metadata")


if __name__ == "__main__":
    main()
