"""``stepwell recurring``: runs on a schedule (six-field cron or a period)."""

from __future__ import annotations

from datetime import datetime

import click

from stepwell.cli.runs import (
    connect,
    emit,
    handle_errors,
    list_options,
    parse_params,
    server_option,
)
from stepwell.errors import InvalidArgument

COLUMNS = ("recurring_run_id", "display_name", "status", "cron", "interval_second", "max_concurrency", "next_fire_at")


@click.group("recurring")
def recurring() -> None:
    """Manage recurring runs."""


def _when(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidArgument(f"{text!r} is not an ISO 8601 time") from None


@recurring.command("create")
@click.argument("file", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option("--name", required=True)
@click.option("--cron", default=None, help="Six fields, seconds first: '0 0 9 ? * 2-6'.")
@click.option("--every", "interval", type=int, default=None, help="Seconds between runs.")
@click.option("--pipeline-id", default=None)
@click.option("--version-id", default=None)
@click.option("--experiment", "experiment_name", default=None)
@click.option("-p", "--param", "params", multiple=True, metavar="NAME=VALUE")
@click.option("--max-concurrency", default=1, show_default=True)
@click.option("--no-catchup", is_flag=True, help="Skip missed fire times (only the latest runs).")
@click.option("--start", default=None, help="ISO 8601 start time.")
@click.option("--end", default=None, help="ISO 8601 end time.")
@click.option("--disabled", is_flag=True)
@server_option
@handle_errors
def create(file: str | None, name: str, cron: str | None, interval: int | None, pipeline_id: str | None,
           version_id: str | None, experiment_name: str | None, params: tuple[str, ...], max_concurrency: int,
           no_catchup: bool, start: str | None, end: str | None, disabled: bool, server: str | None,
           as_json: bool) -> None:
    """Create a recurring run of FILE (a compiled spec) or of a stored pipeline."""
    if bool(file) == bool(pipeline_id or version_id):
        raise InvalidArgument("give FILE or --pipeline-id/--version-id")
    with connect(server) as client:
        experiment_id = client.create_experiment(experiment_name).experiment_id if experiment_name else ""
        created = client.create_recurring_run(
            experiment_id, name, start_time=_when(start), end_time=_when(end), interval_second=interval,
            cron_expression=cron, max_concurrency=max_concurrency, no_catchup=no_catchup,
            params=parse_params(params), pipeline_package_path=file, pipeline_id=pipeline_id,
            version_id=version_id, enabled=not disabled,
        )
    emit(created, COLUMNS, as_json)


@recurring.command("update")
@click.argument("recurring_run_id")
@click.option("--name", default=None)
@click.option("--cron", default=None)
@click.option("--every", "interval", type=int, default=None)
@click.option("--max-concurrency", type=int, default=None)
@click.option("-p", "--param", "params", multiple=True, metavar="NAME=VALUE")
@server_option
@handle_errors
def update(recurring_run_id: str, name: str | None, cron: str | None, interval: int | None,
           max_concurrency: int | None, params: tuple[str, ...], server: str | None, as_json: bool) -> None:
    """Change a recurring run in place."""
    with connect(server) as client:
        changed = client.update_recurring_run(
            recurring_run_id, job_name=name, cron_expression=cron, interval_second=interval,
            max_concurrency=max_concurrency, params=parse_params(params) if params else None,
        )
    emit(changed, COLUMNS, as_json)


@recurring.command("list")
@click.option("--experiment-id", default=None)
@server_option
@list_options
@handle_errors
def list_recurring(experiment_id: str | None, server: str | None, as_json: bool, filter_: str, sort_by: str,
                   page_size: int, page_token: str) -> None:
    """List recurring runs."""
    with connect(server) as client:
        page = client.list_recurring_runs(page_token, page_size, sort_by, experiment_id, filter=filter_)
    emit(page.items, COLUMNS, as_json, page.next_page_token)


@recurring.command("get")
@click.argument("recurring_run_id")
@server_option
@handle_errors
def get(recurring_run_id: str, server: str | None, as_json: bool) -> None:
    """Show a recurring run."""
    with connect(server) as client:
        emit(client.get_recurring_run(recurring_run_id), COLUMNS, as_json)


def _action(name: str, method: str, help_text: str) -> None:
    @recurring.command(name, help=help_text)
    @click.argument("recurring_run_id")
    @server_option
    @handle_errors
    def command(recurring_run_id: str, server: str | None, as_json: bool) -> None:
        with connect(server) as client:
            getattr(client, method)(recurring_run_id)
        click.echo(f"recurring run {recurring_run_id}: {name} done", err=True)


for _name, _method, _help in (
    ("enable", "enable_recurring_run", "Enable a recurring run (fire times count from now)."),
    ("disable", "disable_recurring_run", "Disable a recurring run."),
):
    _action(_name, _method, _help)


@recurring.command("delete")
@click.argument("recurring_run_id")
@click.option("--propagation-policy", type=click.Choice(["ORPHAN", "BACKGROUND", "FOREGROUND"], case_sensitive=False),
              default="ORPHAN", show_default=True,
              help="Its active runs: ORPHAN keeps them running; BACKGROUND stops them after, FOREGROUND before, the deletion.")
@server_option
@handle_errors
def delete(recurring_run_id: str, propagation_policy: str, server: str | None, as_json: bool) -> None:
    """Delete a recurring run (finished runs always stay)."""
    with connect(server) as client:
        client.delete_recurring_run(recurring_run_id, propagation_policy=propagation_policy)
    click.echo(f"recurring run {recurring_run_id}: delete done", err=True)
