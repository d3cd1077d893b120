"""Deleting what a run stored, for ``DeleteRun`` with ``delete_artifacts``.

The metadata service is the system of record for a run's artifacts: when the scheduler
starts a run it records the run's context (``system.PipelineRun``, named by the run id)
with the run's own artifact folder in its ``pipeline_root`` property; every attempt's
outputs and every task log are written below that folder. So the API service:

1. asks the metadata service for the run's context (no context: the run never stored
   anything, there is nothing to delete);
2. removes the cache entries that point at the run's outputs (ListCacheEntries /
   DeleteCacheEntries), first, so no later run can take a cache hit on outputs that are
   about to disappear;
3. deletes the folder through the shared :mod:`stepwell.storage` stores, refusing a
   folder whose last segment is not the run id (never a pipeline root by mistake).

Artifacts outside the folder are never touched: an importer's external data, or a cache
hit's outputs (they live in the folder of the run that produced them).

The metadata contract has no "delete this run's artifacts" call yet; when it gains one,
:class:`MetadataArtifactCleaner` is the one place to switch to it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol

import grpc
from google.protobuf import json_format

from stepwell.errors import FailedPrecondition, NotFound, Unavailable, from_rpc_error
from stepwell.server import make_channel
from stepwell.storage import StorageError, StoreRouter
from stepwell.v1 import metadata_pb2, metadata_pb2_grpc

log = logging.getLogger(__name__)

RUN_CONTEXT = "system.PipelineRun"


class ArtifactCleaner(Protocol):
    """What :meth:`RunService.delete_run` needs to delete a run's artifacts."""

    def delete_run_artifacts(self, run_id: str, pipeline_name: str, namespace: str) -> int:
        """Deletes them; returns how many objects went. Raises :mod:`stepwell.errors`."""


class MetadataArtifactCleaner:
    """An :class:`ArtifactCleaner` led by the metadata service's records (see the module)."""

    def __init__(self, address: Callable[[], str], stores: StoreRouter, timeout: float = 10.0) -> None:
        self._address = address
        self._stores = stores
        self._timeout = timeout
        self._lock = threading.Lock()
        self._channel: grpc.Channel | None = None
        self._channel_address = ""

    def _stub(self) -> metadata_pb2_grpc.MetadataStub:
        address = self._address()
        if not address:
            raise Unavailable("no metadata service address is configured")
        with self._lock:
            if self._channel is None or address != self._channel_address:
                if self._channel is not None:
                    self._channel.close()
                self._channel = make_channel(address)
                self._channel_address = address
            return metadata_pb2_grpc.MetadataStub(self._channel)

    def delete_run_artifacts(self, run_id: str, pipeline_name: str, namespace: str) -> int:
        stub = self._stub()
        try:
            context = stub.GetContext(
                metadata_pb2.GetContextRequest(type=RUN_CONTEXT, name=run_id), timeout=self._timeout
            )
        except grpc.RpcError as err:
            error = from_rpc_error(err)
            if isinstance(error, NotFound):
                return 0  # the run never reached the scheduler's first step: nothing stored
            raise error from None
        properties = json_format.MessageToDict(context.custom_properties)
        root = str(properties.get("pipeline_root") or "")
        if not root:
            raise FailedPrecondition(f"the metadata service recorded no artifact folder for run {run_id!r}")
        if root.rstrip("/").rsplit("/", 1)[-1] != run_id:
            raise FailedPrecondition(
                f"the artifact folder recorded for run {run_id!r} ({root}) is not the run's own; not deleting it"
            )
        try:
            entries = stub.ListCacheEntries(
                metadata_pb2.ListCacheEntriesRequest(pipeline_name=pipeline_name, namespace=namespace),
                timeout=self._timeout,
            ).entries
            for fingerprint in sorted({e.fingerprint for e in entries if e.run_id == run_id}):
                stub.DeleteCacheEntries(
                    metadata_pb2.DeleteCacheEntriesRequest(
                        pipeline_name=pipeline_name, namespace=namespace, fingerprint=fingerprint
                    ),
                    timeout=self._timeout,
                )
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None
        try:
            store = self._stores.for_uri(root)
            objects = len(store.list(root.rstrip("/") + "/"))
            store.delete(root)
        except (StorageError, OSError) as err:
            raise Unavailable(f"could not delete the artifacts of run {run_id!r} at {root}: {err}") from None
        log.info("deleted %d artifact object(s) of run %s under %s", objects, run_id, root)
        return objects

    def close(self) -> None:
        with self._lock:
            if self._channel is not None:
                self._channel.close()
            self._channel = None
            self._channel_address = ""
