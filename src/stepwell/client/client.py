"""``stepwell.Client``: runs pipelines on a Stepwell API service over gRPC.

Method names follow ``kfp.Client`` where KFP has the same operation, so notebook code
moves over with few edits.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from stepwell.client import convert
from stepwell.client.resources import ResourceMethods
from stepwell.client.types import Run, RunPage
from stepwell.errors import StepwellError, from_rpc_error
from stepwell.v1 import (
    experiment_pb2_grpc,
    pipeline_pb2_grpc,
    recurring_run_pb2_grpc,
    run_pb2,
    run_pb2_grpc,
)

DEFAULT_SERVER = "127.0.0.1:8887"


def pipeline_spec_from_func(pipeline_func: Any) -> dict[str, Any]:
    """Compiles a ``@dsl.pipeline`` (Stepwell's or kfp's) to the IR as a dict."""
    from stepwell import dsl

    if dsl.is_pipeline(pipeline_func) or dsl.is_component(pipeline_func):
        from stepwell import compiler

        return compiler.compile_to_dict(pipeline_func)
    if type(pipeline_func).__module__.startswith("kfp."):
        import tempfile

        from kfp import compiler as kfp_compiler

        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "pipeline.yaml")
            kfp_compiler.Compiler().compile(pipeline_func, path)
            return pipeline_spec_from_file(path)
    raise TypeError(f"{pipeline_func!r} is not a pipeline: decorate it with @dsl.pipeline")


def pipeline_spec_from_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Reads and checks a compiled pipeline package from ``path``: YAML or JSON, or a
    zip or tar.gz holding ``pipeline.yaml`` or a single YAML/JSON file (what
    ``kfp.Client`` accepts too)."""
    from stepwell.client.packages import read_package_file

    doc = read_package_file(path)
    if doc.platform_spec:
        return {"pipeline_spec": doc.spec, "platform_spec": doc.platform_spec}
    return doc.spec


class Client(ResourceMethods):
    """A connection to a Stepwell API service.

    Args:
        host: ``HOST:PORT`` of the API service's gRPC port. Defaults to
            ``$STEPWELL_SERVER``, else ``127.0.0.1:8887``.
        namespace: Namespace new runs are created in.
    """

    def __init__(self, host: str | None = None, namespace: str = "") -> None:
        self.host = host or os.environ.get("STEPWELL_SERVER") or DEFAULT_SERVER
        for prefix in ("grpc://", "http://"):
            self.host = self.host.removeprefix(prefix)
        self.namespace = namespace
        from stepwell.server.rpc import make_channel

        self._channel = make_channel(self.host)
        self._runs = run_pb2_grpc.RunServiceStub(self._channel)
        self._pipelines = pipeline_pb2_grpc.PipelineServiceStub(self._channel)
        self._experiments = experiment_pb2_grpc.ExperimentServiceStub(self._channel)
        self._recurring = recurring_run_pb2_grpc.RecurringRunServiceStub(self._channel)

    def close(self) -> None:
        """Closes the connection."""
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _call(self, method: Callable[..., Any], request: Any, timeout: float = 60.0) -> Any:
        try:
            return method(request, timeout=timeout)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None

    # --- runs -------------------------------------------------------------------------

    def create_run(
        self,
        pipeline_spec: dict[str, Any] | None,
        arguments: dict[str, Any] | None = None,
        run_name: str = "",
        description: str = "",
        pipeline_root: str = "",
        experiment_id: str = "",
        pipeline_id: str = "",
        version_id: str = "",
        service_account: str = "",
    ) -> Run:
        """Starts a run of a compiled pipeline spec (the IR as a dict), or of a stored
        pipeline version (``pipeline_id`` and optionally ``version_id``; latest if empty)."""
        request = convert.run_request(
            pipeline_spec,
            arguments or {},
            run_name,
            description,
            self.namespace,
            pipeline_root,
            experiment_id,
            pipeline_id,
            version_id,
            service_account,
        )
        return convert.run_from_proto(self._call(self._runs.CreateRun, request))

    def _experiment_for(self, experiment_name: str | None, experiment_id: str | None, namespace: str | None) -> str:
        if experiment_id:
            return experiment_id
        name = (
            os.environ.get("KF_PIPELINES_OVERRIDE_EXPERIMENT_NAME")
            or experiment_name
            or os.environ.get("KF_PIPELINES_DEFAULT_EXPERIMENT_NAME")
        )
        # Without a name the server puts the run in the namespace's "Default" experiment.
        return self.create_experiment(name, namespace=namespace).experiment_id if name else ""

    def create_run_from_pipeline_func(
        self,
        pipeline_func: Any,
        arguments: dict[str, Any] | None = None,
        run_name: str | None = None,
        experiment_name: str | None = None,
        namespace: str | None = None,
        pipeline_root: str | None = None,
        service_account: str | None = None,
        experiment_id: str | None = None,
        description: str = "",
    ) -> Run:
        """Compiles ``pipeline_func`` (Stepwell's or kfp's) and starts a run of it."""
        spec = pipeline_spec_from_func(pipeline_func)
        return self.create_run(
            spec, arguments, run_name or "", description, pipeline_root or "",
            self._experiment_for(experiment_name, experiment_id, namespace), service_account=service_account or "",
        )

    def create_run_from_pipeline_package(
        self,
        pipeline_file: str | os.PathLike[str],
        arguments: dict[str, Any] | None = None,
        run_name: str | None = None,
        experiment_name: str | None = None,
        namespace: str | None = None,
        pipeline_root: str | None = None,
        service_account: str | None = None,
        experiment_id: str | None = None,
        description: str = "",
    ) -> Run:
        """Starts a run of a compiled pipeline package: YAML, JSON, zip or tar.gz."""
        spec = pipeline_spec_from_file(pipeline_file)
        return self.create_run(
            spec, arguments, run_name or "", description, pipeline_root or "",
            self._experiment_for(experiment_name, experiment_id, namespace), service_account=service_account or "",
        )

    def run_pipeline(
        self,
        experiment_id: str | None = None,
        job_name: str = "",
        pipeline_package_path: str | os.PathLike[str] | None = None,
        params: dict[str, Any] | None = None,
        pipeline_id: str | None = None,
        version_id: str | None = None,
        pipeline_root: str | None = None,
        service_account: str | None = None,
    ) -> Run:
        """kfp's ``run_pipeline``: a run of a package file or of a stored pipeline version."""
        spec = pipeline_spec_from_file(pipeline_package_path) if pipeline_package_path else None
        return self.create_run(
            spec, params, job_name, "", pipeline_root or "", experiment_id or "",
            pipeline_id or "", version_id or "", service_account or "",
        )

    def get_run(self, run_id: str) -> Run:
        """The run with id ``run_id``, with its tasks and outputs."""
        return convert.run_from_proto(self._call(self._runs.GetRun, run_pb2.GetRunRequest(run_id=run_id)))

    def list_runs(
        self,
        page_token: str = "",
        page_size: int = 20,
        sort_by: str = "",
        experiment_id: str | None = None,
        namespace: str | None = None,
        filter: str | None = None,
    ) -> RunPage:
        """One page of runs (newest first unless ``sort_by`` says otherwise); ``filter``
        is KFP's predicate JSON."""
        reply = self._call(
            self._runs.ListRuns,
            run_pb2.ListRunsRequest(
                namespace=namespace if namespace is not None else self.namespace,
                page_size=page_size,
                page_token=page_token,
                experiment_id=experiment_id or "",
                sort_by=sort_by,
                filter=filter or "",
            ),
        )
        return RunPage(
            runs=[convert.run_from_proto(r) for r in reply.runs],
            next_page_token=reply.next_page_token,
            total_size=reply.total_size,
        )

    def terminate_run(self, run_id: str) -> Run:
        """Stops a run: running tasks are killed and the run ends CANCELED."""
        return convert.run_from_proto(
            self._call(self._runs.TerminateRun, run_pb2.TerminateRunRequest(run_id=run_id))
        )

    def retry_run(self, run_id: str) -> Run:
        """Runs a FAILED or CANCELED run's failed tasks again; succeeded tasks keep their outputs."""
        return convert.run_from_proto(self._call(self._runs.RetryRun, run_pb2.RetryRunRequest(run_id=run_id)))

    def archive_run(self, run_id: str) -> None:
        self._call(self._runs.ArchiveRun, run_pb2.ArchiveRunRequest(run_id=run_id))

    def unarchive_run(self, run_id: str) -> None:
        self._call(self._runs.UnarchiveRun, run_pb2.UnarchiveRunRequest(run_id=run_id))

    def delete_run(self, run_id: str, delete_artifacts: bool = False) -> None:
        """Deletes the run and its task records (an active run is stopped first).

        With ``delete_artifacts`` (Stepwell) the run must have ended, and what it stored
        goes too: its artifact folder (outputs of every attempt, task logs) and the
        cache entries pointing at it."""
        self._call(self._runs.DeleteRun, run_pb2.DeleteRunRequest(run_id=run_id, delete_artifacts=delete_artifacts))

    def watch_run(self, run_id: str, interval: float = 0.1, timeout: float | None = None) -> Iterator[Run]:
        """Yields the run each time it changes (its state, or a status report the API
        service applied), ending with its final state.

        Each poll asks only for the tasks changed since the previous one and converts
        only those, so following a run of thousands of tasks costs what changes in it.
        Raises ``TimeoutError`` when ``timeout`` seconds pass before the run ends.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        watch = convert.RunWatch(run_id)
        while True:
            run = watch.update(self._call(self._runs.GetRun, watch.request()))
            if watch.stale:
                continue
            if run is not None:
                yield run
                if run.done:
                    return
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} did not finish within {timeout:.0f}s")
            time.sleep(interval)

    def wait_for_run_completion(self, run_id: str, timeout: float = 3600.0, sleep_duration: float = 0.1) -> Run:
        """Waits until the run reaches a final state and returns it.

        Raises ``TimeoutError`` when ``timeout`` seconds pass first.
        """
        final = None
        for final in self.watch_run(run_id, interval=sleep_duration, timeout=timeout):  # noqa: B007
            pass
        assert final is not None
        return final


__all__ = ["Client", "StepwellError", "pipeline_spec_from_file", "pipeline_spec_from_func"]
