"""The ``stepwell`` command line: run, compile and serve pipelines."""

from __future__ import annotations

from stepwell.cli.main import cli, main

__all__ = ["cli", "main"]
