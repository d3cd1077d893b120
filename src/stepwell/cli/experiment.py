"""``stepwell experiment``: create, list, archive and delete experiments."""

from __future__ import annotations

import click

from stepwell.cli.runs import connect, emit, handle_errors, list_options, server_option

COLUMNS = ("experiment_id", "display_name", "storage_state", "created_at", "last_run_created_at")


@click.group("experiment")
def experiment() -> None:
    """Manage experiments (named groups of runs)."""


@experiment.command("create")
@click.argument("name")
@click.option("--description", default=None)
@server_option
@handle_errors
def create(name: str, description: str | None, server: str | None, as_json: bool) -> None:
    """Create an experiment (or show it, when one with NAME exists)."""
    with connect(server) as client:
        emit(client.create_experiment(name, description), COLUMNS, as_json)


@experiment.command("list")
@server_option
@list_options
@handle_errors
def list_experiments(server: str | None, as_json: bool, filter_: str, sort_by: str, page_size: int, page_token: str) -> None:
    """List experiments."""
    with connect(server) as client:
        page = client.list_experiments(page_token, page_size, sort_by, filter=filter_)
    emit(page.items, COLUMNS, as_json, page.next_page_token)


@experiment.command("get")
@click.argument("experiment_id")
@server_option
@handle_errors
def get(experiment_id: str, server: str | None, as_json: bool) -> None:
    """Show an experiment."""
    with connect(server) as client:
        emit(client.get_experiment(experiment_id), COLUMNS, as_json)


def _action(name: str, method: str, help_text: str) -> None:
    @experiment.command(name, help=help_text)
    @click.argument("experiment_id")
    @server_option
    @handle_errors
    def command(experiment_id: str, server: str | None, as_json: bool) -> None:
        with connect(server) as client:
            getattr(client, method)(experiment_id)
        click.echo(f"experiment {experiment_id}: {name} done", err=True)


for _name, _method, _help in (
    ("archive", "archive_experiment", "Archive an experiment and its runs; disable its recurring runs."),
    ("unarchive", "unarchive_experiment", "Unarchive an experiment."),
    ("delete", "delete_experiment", "Delete an experiment with its runs and recurring runs."),
):
    _action(_name, _method, _help)
