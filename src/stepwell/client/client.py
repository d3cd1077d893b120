"""``stepwell.Client``: runs pipelines on a Stepwell API service over gRPC.

Method names follow ``kfp.Client`` where KFP has the same operation, so notebook code
moves over with few edits.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc

from stepwell.client import convert
from stepwell.client.types import Run, RunPage
from stepwell.errors import StepwellError, from_rpc_error
from stepwell.v1 import run_pb2, run_pb2_grpc

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
    """Reads and checks a compiled pipeline spec (YAML or JSON) from ``path``."""
    from stepwell.errors import InvalidArgument
    from stepwell.ir import load_pipeline_spec

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InvalidArgument(f"cannot read pipeline package {str(path)!r}: {err}") from None
    doc = load_pipeline_spec(text)
    if doc.platform_spec:
        return {"pipeline_spec": doc.spec, "platform_spec": doc.platform_spec}
    return doc.spec


class Client:
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
        pipeline_spec: dict[str, Any],
        arguments: dict[str, Any] | None = None,
        run_name: str = "",
        description: str = "",
        pipeline_root: str = "",
        experiment_id: str = "",
    ) -> Run:
        """Starts a run of a compiled pipeline spec (the IR as a dict)."""
        request = convert.run_request(
            pipeline_spec,
            arguments or {},
            run_name,
            description,
            self.namespace,
            pipeline_root,
            experiment_id,
        )
        return convert.run_from_proto(self._call(self._runs.CreateRun, request))

    def create_run_from_pipeline_func(
        self,
        pipeline_func: Any,
        arguments: dict[str, Any] | None = None,
        run_name: str | None = None,
        pipeline_root: str | None = None,
        description: str = "",
    ) -> Run:
        """Compiles ``pipeline_func`` and starts a run of it."""
        spec = pipeline_spec_from_func(pipeline_func)
        return self.create_run(spec, arguments, run_name or "", description, pipeline_root or "")

    def create_run_from_pipeline_package(
        self,
        pipeline_file: str | os.PathLike[str],
        arguments: dict[str, Any] | None = None,
        run_name: str | None = None,
        pipeline_root: str | None = None,
        description: str = "",
    ) -> Run:
        """Starts a run of a compiled pipeline file (YAML or JSON)."""
        spec = pipeline_spec_from_file(pipeline_file)
        return self.create_run(spec, arguments, run_name or "", description, pipeline_root or "")

    def get_run(self, run_id: str) -> Run:
        """The run with id ``run_id``, with its tasks and outputs."""
        return convert.run_from_proto(self._call(self._runs.GetRun, run_pb2.GetRunRequest(run_id=run_id)))

    def list_runs(self, page_size: int = 20, page_token: str = "") -> RunPage:
        """One page of runs, newest first."""
        reply = self._call(
            self._runs.ListRuns,
            run_pb2.ListRunsRequest(namespace=self.namespace, page_size=page_size, page_token=page_token),
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

    def watch_run(self, run_id: str, interval: float = 0.1, timeout: float | None = None) -> Iterator[Run]:
        """Yields the run each time it changes, ending with its final state.

        Raises ``TimeoutError`` when ``timeout`` seconds pass before the run ends.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        last: Any = None
        while True:
            message = self._call(self._runs.GetRun, run_pb2.GetRunRequest(run_id=run_id))
            message.ClearField("pipeline_spec")
            if message != last:
                last = message
                run = convert.run_from_proto(message)
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
