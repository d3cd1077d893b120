"""Stepwell: Kubeflow-Pipelines-class ML workflows, on a laptop or on Kubernetes.

``from stepwell import dsl, compiler`` replaces ``from kfp import dsl, compiler``;
``stepwell.Client`` talks to a Stepwell API service over gRPC.

Submodules are imported lazily so that code running inside a task (``stepwell.runtime``)
starts without loading the SDK, gRPC or the protobuf runtime.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from stepwell import compiler, components, dsl
    from stepwell.client import Client

__all__ = ["Client", "__version__", "compiler", "components", "dsl"]

_SUBMODULES = {"dsl", "compiler", "components", "client", "cli", "errors", "ir", "storage"}


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"stepwell.{name}")
    if name == "Client":
        return importlib.import_module("stepwell.client").Client
    raise AttributeError(f"module 'stepwell' has no attribute {name!r}")
