"""``stepwell logs RUN [TASK]``: a run's task logs, stored with its artifacts.

Against a server (``--server HOST:PORT`` of the API service, or ``$STEPWELL_SERVER``) the
logs come from its scheduler: ``$STEPWELL_SCHEDULER_ADDRESS``, else the same host on port
8889 (where ``stepwell server`` puts it). Without a server, the scheduler of the embedded
home (``$STEPWELL_HOME``) answers.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

DEFAULT_PORTS = {"scheduler": 8889, "metadata": 8890}


def peer_address(server: str, service: str) -> str:
    """Where ``service`` answers next to the API service at ``server``."""
    explicit = os.environ.get(f"STEPWELL_{service.upper()}_ADDRESS")
    if explicit:
        return explicit
    host = server.rsplit(":", 1)[0] if ":" in server else server
    return f"{host}:{DEFAULT_PORTS[service]}"


@contextlib.contextmanager
def service_channel(server: str | None, service: str) -> Iterator[Any]:
    """A gRPC channel to ``service`` ("scheduler" or "metadata"), starting it on the home if needed."""
    from stepwell.server import make_channel

    with contextlib.ExitStack() as stack:
        if server:
            address = peer_address(server, service)
        else:
            from stepwell.cli.embedded import _factory

            logging.getLogger().setLevel(logging.WARNING)
            home = Path(os.environ.get("STEPWELL_HOME") or "~/.stepwell").expanduser()
            app = _factory(service)({"home": home})
            stack.callback(app.stop)
            address = f"127.0.0.1:{app.start(0).port}"
        channel = make_channel(address)
        stack.callback(channel.close)
        yield channel


@click.command("logs")
@click.argument("run_id")
@click.argument("task", required=False)
@click.option("--server", envvar="STEPWELL_SERVER", help="HOST:PORT of a Stepwell API service; without it the embedded home answers.")
def logs(run_id: str, task: str | None, server: str | None) -> None:
    """Print the stored logs of RUN's tasks (or of TASK only, e.g. 'for-loop-2[0]/add')."""
    import grpc

    from stepwell.v1 import scheduler_pb2, scheduler_pb2_grpc

    try:
        with service_channel(server, "scheduler") as channel:
            stub = scheduler_pb2_grpc.SchedulerStub(channel)
            if task:
                names = [task]
            else:
                status = stub.GetRunStatus(scheduler_pb2.GetRunStatusRequest(run_id=run_id), timeout=30)
                names = [t.task_id for t in status.task_details if t.kind not in ("dag", "loop") and (t.log_uri or t.start_time.seconds)]
            for name in names:
                reply = stub.GetTaskLog(scheduler_pb2.GetTaskLogRequest(run_id=run_id, task_id=name), timeout=30)
                if not task:
                    click.echo(f"===== {name} =====")
                click.echo(reply.text, nl=not reply.text.endswith("\n"))
    except grpc.RpcError as err:
        click.echo(f"error: {err.details()}", err=True)  # type: ignore[attr-defined]
        code = err.code()  # type: ignore[attr-defined]
        raise click.exceptions.Exit(2 if code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT) else 1) from None
