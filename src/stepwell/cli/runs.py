"""``stepwell runs``: list, inspect, start, stop, retry, archive and delete runs.

(``stepwell run FILE`` runs a pipeline file and follows it; ``stepwell runs`` manages
runs already recorded.) This module also holds what the resource commands share: the
``--server`` option (without it an embedded stack on ``$STEPWELL_HOME`` answers),
table output and ``--json``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from stepwell.errors import InvalidArgument, NotFound, StepwellError

F = TypeVar("F", bound=Callable[..., Any])
EXIT_FAILED, EXIT_BAD_INPUT = 1, 2


def server_option(func: F) -> F:
    """Adds ``--server`` (default ``$STEPWELL_SERVER``) and ``--json``."""
    func = click.option("--json", "as_json", is_flag=True, help="Write JSON instead of a table.")(func)
    return click.option(  # type: ignore[return-value]
        "--server", envvar="STEPWELL_SERVER",
        help="HOST:PORT of a Stepwell API service; without it an embedded stack on $STEPWELL_HOME answers.",
    )(func)


@contextlib.contextmanager
def connect(server: str | None) -> Iterator[Any]:
    """A :class:`stepwell.client.Client` for ``server``, or for an embedded stack."""
    import logging

    from stepwell.client import Client

    with contextlib.ExitStack() as stack:
        if server:
            address = server
        else:
            from stepwell.cli.embedded import EmbeddedStack

            logging.getLogger().setLevel(logging.WARNING)
            home = Path(os.environ.get("STEPWELL_HOME") or "~/.stepwell").expanduser()
            address = stack.enter_context(EmbeddedStack(home=home, own_process=True)).api_address
        yield stack.enter_context(Client(address))


def handle_errors(func: F) -> F:
    """Stepwell errors become ``error: ...`` and exit code 2 (bad input) or 1."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (InvalidArgument, NotFound) as err:
            click.echo(f"error: {err}", err=True)
            raise click.exceptions.Exit(EXIT_BAD_INPUT) from None
        except StepwellError as err:
            click.echo(f"error: {err}", err=True)
            raise click.exceptions.Exit(EXIT_FAILED) from None

    return wrapper  # type: ignore[return-value]


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def emit(items: Sequence[Any] | Any, columns: Sequence[str], as_json: bool, next_page_token: str = "") -> None:
    """Prints ``items`` (dataclasses) as a table of ``columns``, or as JSON."""
    many = isinstance(items, (list, tuple))
    rows = list(items) if many else [items]
    if as_json:
        data: Any = [_plain(r) for r in rows] if many else _plain(rows[0])
        if many and next_page_token:
            data = {"items": data, "next_page_token": next_page_token}
        click.echo(json.dumps(data, indent=None if many else 2, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column.upper())
    for row in rows:
        cells = []
        for column in columns:
            value = getattr(row, column, "")
            if isinstance(value, datetime):
                value = value.strftime("%Y-%m-%d %H:%M:%S")
            cells.append("" if value is None else str(value))
        table.add_row(*cells)
    Console(file=sys.stdout, width=200).print(table)
    if next_page_token:
        click.echo(f"(more: --page-token {next_page_token})", err=True)


def list_options(func: F) -> F:
    """``--filter``, ``--sort-by``, ``--page-size`` and ``--page-token``."""
    for option in reversed([
        click.option("--filter", "filter_", default="", help='KFP filter JSON, e.g. {"predicates": [...]}.'),
        click.option("--sort-by", default="", help='"field", "field asc" or "field desc".'),
        click.option("--page-size", default=20, show_default=True),
        click.option("--page-token", default=""),
    ]):
        func = option(func)
    return func


def parse_params(pairs: Sequence[str]) -> dict[str, Any]:
    """``NAME=VALUE`` pairs; a VALUE that parses as JSON is used as such."""
    from stepwell.ir import parse_cli_value

    params: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise InvalidArgument(f"-p {pair!r} is not NAME=VALUE")
        params[name] = parse_cli_value(text)
    return params


def state_filter(state: str | None, filter_: str) -> str:
    """Adds ``state EQUALS <state>`` to a filter."""
    if not state:
        return filter_
    data = json.loads(filter_) if filter_ else {"predicates": []}
    data.setdefault("predicates", []).append({"key": "state", "operation": "EQUALS", "string_value": state.upper()})
    return json.dumps(data)


RUN_COLUMNS = ("run_id", "display_name", "state", "created_at", "finished_at", "experiment_id")


@click.group("runs")
def runs() -> None:
    """Manage recorded runs (list, get, create, terminate, retry, archive, delete)."""


@runs.command("list")
@server_option
@list_options
@click.option("--experiment-id", default="")
@click.option("--state", default=None, help="Only runs in this state (e.g. FAILED).")
@handle_errors
def list_runs(server: str | None, as_json: bool, filter_: str, sort_by: str, page_size: int, page_token: str,
              experiment_id: str, state: str | None) -> None:
    """List runs, newest first."""
    with connect(server) as client:
        page = client.list_runs(page_token=page_token, page_size=page_size, sort_by=sort_by,
                                experiment_id=experiment_id, filter=state_filter(state, filter_))
    emit(page.runs, RUN_COLUMNS, as_json, page.next_page_token)


@runs.command("get")
@click.argument("run_id")
@server_option
@handle_errors
def get_run(run_id: str, server: str | None, as_json: bool) -> None:
    """Show a run and its tasks."""
    with connect(server) as client:
        run = client.get_run(run_id)
    if as_json:
        emit(run, RUN_COLUMNS, True)
        return
    emit([run], RUN_COLUMNS, False)
    if run.error:
        click.echo(f"error: {run.error}")
    if run.tasks:
        click.echo("")
        emit(run.tasks, ("task_id", "state", "cached", "start_time", "end_time", "error"), False)


@runs.command("create")
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.option("--pipeline-id", default="", help="Run a stored pipeline instead of FILE.")
@click.option("--version-id", default="", help="The stored version (default: the latest).")
@click.option("-p", "--param", "params", multiple=True, metavar="NAME=VALUE")
@click.option("--name", "run_name", default="")
@click.option("--experiment", "experiment_name", default=None, help="Experiment name (created when missing).")
@click.option("--wait", is_flag=True, help="Wait for the run to end; exit 1 unless it SUCCEEDED.")
@server_option
@handle_errors
def create_run(file: str | None, pipeline_id: str, version_id: str, params: tuple[str, ...], run_name: str,
               experiment_name: str | None, wait: bool, server: str | None, as_json: bool) -> None:
    """Start a run of FILE (.py or compiled spec) or of a stored pipeline version."""
    from stepwell.cli.loading import load_pipeline_file

    if bool(file) == bool(pipeline_id or version_id):
        raise InvalidArgument("give FILE or --pipeline-id/--version-id")
    spec = load_pipeline_file(file) if file else None
    with connect(server) as client:
        experiment_id = client.create_experiment(experiment_name).experiment_id if experiment_name else ""
        run = client.create_run(spec, parse_params(params), run_name, experiment_id=experiment_id,
                                pipeline_id=pipeline_id, version_id=version_id)
        if wait:
            run = client.wait_for_run_completion(run.run_id)
    emit(run, RUN_COLUMNS, as_json)
    if wait and run.state != "SUCCEEDED":
        raise click.exceptions.Exit(EXIT_FAILED)


def _action(name: str, method: str, help_text: str) -> None:
    @runs.command(name, help=help_text)
    @click.argument("run_id")
    @server_option
    @handle_errors
    def command(run_id: str, server: str | None, as_json: bool) -> None:
        with connect(server) as client:
            result = getattr(client, method)(run_id)
        if result is not None:
            emit(result, RUN_COLUMNS, as_json)
        elif as_json:
            click.echo(json.dumps({"run_id": run_id, "done": name}))
        else:
            click.echo(f"run {run_id}: {name} done")


for _name, _method, _help in (
    ("terminate", "terminate_run", "Stop a run (it ends CANCELED)."),
    ("retry", "retry_run", "Run a FAILED or CANCELED run's failed tasks again."),
    ("archive", "archive_run", "Archive a run."),
    ("unarchive", "unarchive_run", "Unarchive a run."),
):
    _action(_name, _method, _help)


@runs.command("delete")
@click.argument("run_id")
@click.option("--artifacts", is_flag=True,
              help="Also delete what the run stored (its artifact folder and cache entries); the run must have ended.")
@server_option
@handle_errors
def delete(run_id: str, artifacts: bool, server: str | None, as_json: bool) -> None:
    """Delete a run and its task records."""
    with connect(server) as client:
        client.delete_run(run_id, delete_artifacts=artifacts)
    if as_json:
        click.echo(json.dumps({"run_id": run_id, "done": "delete", "artifacts_deleted": artifacts}))
    else:
        click.echo(f"run {run_id}: delete done" + (" (with its artifacts)" if artifacts else ""))
