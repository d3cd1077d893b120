"""``stepwell pipeline``: upload, list, inspect and delete stored pipelines and versions."""

from __future__ import annotations

import click

from stepwell.cli.runs import connect, emit, handle_errors, list_options, server_option
from stepwell.errors import InvalidArgument

PIPELINE_COLUMNS = ("pipeline_id", "name", "display_name", "created_at", "description")
VERSION_COLUMNS = ("pipeline_version_id", "name", "created_at", "description")


@click.group("pipeline")
def pipeline() -> None:
    """Manage stored pipelines and their versions."""


@pipeline.command("upload")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--name", default=None, help="Pipeline name (default: the spec's pipelineInfo.name).")
@click.option("--description", default=None)
@server_option
@handle_errors
def upload(file: str, name: str | None, description: str | None, server: str | None, as_json: bool) -> None:
    """Store a compiled pipeline (YAML, JSON, zip, tar.gz) as a new pipeline."""
    with connect(server) as client:
        emit(client.upload_pipeline(file, name, description), PIPELINE_COLUMNS, as_json)


@pipeline.command("upload-version")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--version", "version_name", required=True, help="Name of the new version.")
@click.option("--pipeline-id", default=None)
@click.option("--pipeline-name", default=None)
@click.option("--description", default=None)
@server_option
@handle_errors
def upload_version(file: str, version_name: str, pipeline_id: str | None, pipeline_name: str | None,
                   description: str | None, server: str | None, as_json: bool) -> None:
    """Add FILE as a new version of a stored pipeline."""
    if not pipeline_id and not pipeline_name:
        raise InvalidArgument("give --pipeline-id or --pipeline-name")
    with connect(server) as client:
        version = client.upload_pipeline_version(file, version_name, pipeline_id, pipeline_name, description)
    emit(version, VERSION_COLUMNS, as_json)


@pipeline.command("list")
@server_option
@list_options
@handle_errors
def list_pipelines(server: str | None, as_json: bool, filter_: str, sort_by: str, page_size: int, page_token: str) -> None:
    """List stored pipelines."""
    with connect(server) as client:
        page = client.list_pipelines(page_token, page_size, sort_by, filter_)
    emit(page.items, PIPELINE_COLUMNS, as_json, page.next_page_token)


@pipeline.command("get")
@click.argument("pipeline_id")
@server_option
@handle_errors
def get(pipeline_id: str, server: str | None, as_json: bool) -> None:
    """Show a pipeline."""
    with connect(server) as client:
        emit(client.get_pipeline(pipeline_id), PIPELINE_COLUMNS, as_json)


@pipeline.command("versions")
@click.argument("pipeline_id")
@server_option
@list_options
@handle_errors
def versions(pipeline_id: str, server: str | None, as_json: bool, filter_: str, sort_by: str, page_size: int,
             page_token: str) -> None:
    """List a pipeline's versions."""
    with connect(server) as client:
        page = client.list_pipeline_versions(pipeline_id, page_token, page_size, sort_by, filter_)
    emit(page.items, VERSION_COLUMNS, as_json, page.next_page_token)


@pipeline.command("delete")
@click.argument("pipeline_id")
@click.option("--cascade", is_flag=True, help="Delete its versions too.")
@click.option("--version", "version_id", default=None, help="Delete only this version.")
@server_option
@handle_errors
def delete(pipeline_id: str, cascade: bool, version_id: str | None, server: str | None, as_json: bool) -> None:
    """Delete a pipeline (with --cascade, its versions too) or one version."""
    with connect(server) as client:
        if version_id:
            client.delete_pipeline_version(pipeline_id, version_id)
        else:
            client.delete_pipeline(pipeline_id, cascade=cascade)
    click.echo(f"deleted {version_id or pipeline_id}", err=True)
