"""``stepwell`` commands: ``run``, ``compile`` and ``server``.

Exit codes of ``stepwell run``: 0 when the run SUCCEEDED, 1 when it did not, 2 for bad
input (an unreadable file, an unknown or ill-typed parameter, an invalid spec); for bad
input nothing is recorded.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import click

from stepwell.errors import InvalidArgument, StepwellError

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


def _home() -> Path:
    return Path(os.environ.get("STEPWELL_HOME") or "~/.stepwell").expanduser()


def _bad_input(message: str) -> click.exceptions.Exit:
    click.echo(f"error: {message}", err=True)
    return click.exceptions.Exit(EXIT_BAD_INPUT)


def _parse_params(pairs: tuple[str, ...], spec: dict[str, Any]) -> dict[str, Any]:
    from stepwell.ir import parse_cli_value, resolve_parameters

    declared = spec.get("pipeline_spec", spec).get("root", {}).get("inputDefinitions", {}).get("parameters", {})
    given: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise InvalidArgument(f"-p {pair!r} is not NAME=VALUE")
        given[name] = parse_cli_value(text, declared.get(name, {}).get("parameterType"))
    resolve_parameters(declared, given)  # fail early, before anything is submitted
    return given


class _StepwellGroup(click.Group):
    """``stepwell run FILE`` runs a pipeline; ``stepwell run list|get|terminate|...`` (like
    ``stepwell runs ...``) manages recorded runs, as the other resource groups do."""

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        if len(args) > 1 and args[0] == "run":
            runs = self.get_command(ctx, "runs")
            if isinstance(runs, click.Group) and args[1] in runs.list_commands(ctx):
                return "runs", runs, args[1:]
        return super().resolve_command(ctx, args)


@click.group(cls=_StepwellGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="stepwell")
def cli() -> None:
    """Stepwell: run ML pipelines (KFP-compatible) on a laptop or a cluster."""


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("-p", "--param", "params", multiple=True, metavar="NAME=VALUE", help="A pipeline parameter; VALUE is read as JSON when it parses.")
@click.option("--pipeline", "pipeline_name", help="Which pipeline of FILE to run (function or pipeline name).")
@click.option("--server", envvar="STEPWELL_SERVER", help="HOST:PORT of a Stepwell API service; without it, an embedded stack runs in this process.")
@click.option("--json", "as_json", is_flag=True, help="Write one JSON object with the run's outcome to stdout.")
@click.option("--name", "run_name", default="", help="Display name of the run.")
@click.option("--no-cache", is_flag=True, help="Run every task, even where a cached result exists.")
def run(
    file: str, params: tuple[str, ...], pipeline_name: str | None, server: str | None, as_json: bool, run_name: str, no_cache: bool
) -> None:
    """Run the pipeline in FILE (a .py file with a @dsl.pipeline, or a compiled .yaml/.json).

    `stepwell run list|get|terminate|retry|...` manage recorded runs (same as `stepwell runs`).
    """
    from stepwell.cli.loading import load_pipeline_file
    from stepwell.ir import with_caching

    try:
        spec = load_pipeline_file(file, pipeline_name)
        if no_cache:
            spec = with_caching(spec, False)
        arguments = _parse_params(params, spec)
    except InvalidArgument as err:
        raise _bad_input(str(err)) from None

    with ExitStack() as stack:
        if server:
            address = server
        else:
            from stepwell.cli.embedded import EmbeddedStack

            logging.getLogger().setLevel(logging.WARNING)
            address = stack.enter_context(EmbeddedStack(home=_home(), own_process=True)).api_address
        result = _submit_and_follow(address, spec, arguments, run_name, as_json)
    raise click.exceptions.Exit(0 if result == "SUCCEEDED" else EXIT_FAILED)


def _submit_and_follow(address: str, spec: dict[str, Any], arguments: dict[str, Any], run_name: str, as_json: bool) -> str:
    from stepwell.cli import output, progress
    from stepwell.client import Client

    with Client(address) as client:
        try:
            created = client.create_run(spec, arguments, run_name=run_name)
        except InvalidArgument as err:
            raise _bad_input(str(err)) from None
        except StepwellError as err:
            click.echo(f"error: could not start the run on {address}: {err}", err=True)
            raise click.exceptions.Exit(EXIT_FAILED) from None
        try:
            final = progress.follow(client.watch_run(created.run_id), sys.stderr)
        except KeyboardInterrupt:
            click.echo(f"\ninterrupted: terminating run {created.run_id}", err=True)
            client.terminate_run(created.run_id)
            final = client.wait_for_run_completion(created.run_id, timeout=60)
    if final.state != "SUCCEEDED":
        progress.report_failure(final, sys.stderr)
    if as_json:
        click.echo(json.dumps(output.run_json(final)))
    else:
        click.echo(output.run_text(final))
    return final.state


@cli.command("compile")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("-o", "--output", "out", required=True, type=click.Path(dir_okay=False), help="Where to write the PipelineSpec YAML.")
@click.option("--pipeline", "pipeline_name", help="Which pipeline of FILE to compile.")
def compile_command(file: str, out: str, pipeline_name: str | None) -> None:
    """Compile the pipeline in FILE.py to PipelineSpec YAML (KFP schema 2.1.0)."""
    from stepwell import compiler
    from stepwell.cli.loading import find_pipeline

    try:
        obj = find_pipeline(file, pipeline_name)
        compiler.Compiler().compile(obj, out)
    except InvalidArgument as err:
        raise _bad_input(str(err)) from None
    except (TypeError, ValueError) as err:
        raise _bad_input(f"compiling {file!r} failed: {err}") from None
    click.echo(f"wrote {out}", err=True)


@cli.command()
@click.option("--port", default=8887, show_default=True, help="API service gRPC port.")
@click.option("--http-port", default=8888, show_default=True, help="HTTP port (KFP REST, healthz).")
@click.option("--scheduler-port", default=8889, show_default=True)
@click.option("--metadata-port", default=8890, show_default=True)
def server(port: int, http_port: int, scheduler_port: int, metadata_port: int) -> None:
    """Run the API, scheduler and metadata services in one process."""
    import signal
    import threading

    from stepwell.cli.embedded import EmbeddedStack

    logging.basicConfig(level=os.environ.get("STEPWELL_LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stack = EmbeddedStack(
        home=_home(),
        api_port=port,
        http_port=http_port,
        scheduler_port=scheduler_port,
        metadata_port=metadata_port,
        own_process=True,
    )
    stack.start()
    click.echo(f"stepwell server: API gRPC {stack.api_address}, HTTP {stack.http_address}, state in {_home()}", err=True)
    sys.stdout.flush()
    try:
        stop.wait()
    finally:
        stack.stop()


def _register() -> None:
    from stepwell.cli.cache import cache
    from stepwell.cli.experiment import experiment
    from stepwell.cli.logs import logs
    from stepwell.cli.pipeline import pipeline
    from stepwell.cli.recurring import recurring
    from stepwell.cli.runs import runs

    for group in (pipeline, experiment, runs, recurring, logs, cache):
        cli.add_command(group)


_register()


def main() -> None:
    """Entry point of the ``stepwell`` console script."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    cli()
