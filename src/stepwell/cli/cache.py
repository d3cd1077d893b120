"""``stepwell cache list|clear``: the task cache index kept by the metadata service."""

from __future__ import annotations

import json

import click

from stepwell.cli.logs import service_channel


@click.group("cache")
def cache() -> None:
    """List and clear cached task results."""


@cache.command("list")
@click.option("--pipeline", "pipeline_name", default="", help="Only this pipeline's entries.")
@click.option("--namespace", default="")
@click.option("--limit", default=0, help="At most this many entries (newest first).")
@click.option("--server", envvar="STEPWELL_SERVER", help="HOST:PORT of a Stepwell API service; without it the embedded home answers.")
@click.option("--json", "as_json", is_flag=True, help="Write JSON instead of a table.")
def list_entries(pipeline_name: str, namespace: str, limit: int, server: str | None, as_json: bool) -> None:
    """List cache entries."""
    from google.protobuf import json_format

    from stepwell.v1 import metadata_pb2, metadata_pb2_grpc

    with service_channel(server, "metadata") as channel:
        stub = metadata_pb2_grpc.MetadataStub(channel)
        request = metadata_pb2.ListCacheEntriesRequest(pipeline_name=pipeline_name, namespace=namespace, limit=limit)
        entries = stub.ListCacheEntries(request, timeout=30).entries
    if as_json:
        click.echo(json.dumps([json_format.MessageToDict(e, preserving_proto_field_name=True) for e in entries], indent=2))
        return
    click.echo(f"{'PIPELINE':24} {'TASK':28} {'FINGERPRINT':16} {'RUN':34} CREATED")
    for e in entries:
        created = e.create_time.ToDatetime().isoformat(timespec="seconds") if e.HasField("create_time") else ""
        click.echo(f"{e.pipeline_name[:24]:24} {e.task_name[:28]:28} {e.fingerprint[:16]:16} {e.run_id[:34]:34} {created}")


@cache.command("clear")
@click.option("--pipeline", "pipeline_name", default="", help="Only this pipeline's entries (default: all).")
@click.option("--namespace", default="")
@click.option("--fingerprint", default="", help="Only entries with this fingerprint.")
@click.option("--server", envvar="STEPWELL_SERVER", help="HOST:PORT of a Stepwell API service; without it the embedded home answers.")
def clear(pipeline_name: str, namespace: str, fingerprint: str, server: str | None) -> None:
    """Delete cache entries (tasks run again next time; artifacts are kept)."""
    from stepwell.v1 import metadata_pb2, metadata_pb2_grpc

    with service_channel(server, "metadata") as channel:
        stub = metadata_pb2_grpc.MetadataStub(channel)
        request = metadata_pb2.DeleteCacheEntriesRequest(
            pipeline_name=pipeline_name, namespace=namespace, fingerprint=fingerprint
        )
        deleted = stub.DeleteCacheEntries(request, timeout=30).deleted
    click.echo(f"deleted {deleted} cache entr{'y' if deleted == 1 else 'ies'}")
