"""Calls to a service of this process without the network (``stepwell.server.local``).

The embedded stack's services call each other through :func:`stepwell.server.make_channel`,
which runs a unary call to a server of this process in the caller's thread. These tests
hold it to the contract the network carries: the same answers, the same status codes and
details, the same failure once the server is gone, and requests and answers that are
copies.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest

from stepwell.server import make_channel
from stepwell.server.local import LocalChannel, loopback_port
from stepwell.v1 import metadata_pb2 as pb
from stepwell.v1 import metadata_pb2_grpc
from stepwell_metadata.app import MetadataApp
from stepwell_metadata.settings import MetadataSettings


@pytest.fixture
def served(empty_db_url: str, tmp_path: Any) -> Iterator[MetadataApp]:
    app = MetadataApp(MetadataSettings(home=tmp_path / "home", metadata_database_url=empty_db_url))
    app.start(port=0)
    yield app
    app.stop()


def _outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    """``("ok", answer)`` or ``(code name, details)``."""
    try:
        return "ok", call()
    except grpc.RpcError as err:
        return err.code().name, err.details()


def test_loopback_addresses_only() -> None:
    assert loopback_port("127.0.0.1:8890") == 8890
    assert loopback_port("localhost:1") == 1
    assert loopback_port("[::1]:8890") == 8890
    assert loopback_port("10.0.0.7:8890") is None
    assert loopback_port("metadata.stepwell.svc:8890") is None
    assert loopback_port("127.0.0.1") is None
    assert not isinstance(make_channel("metadata.example:8890"), LocalChannel)


def test_same_answers_and_errors_as_the_network(served: MetadataApp) -> None:
    assert served.server is not None
    address = served.server.address
    local_channel = make_channel(address)
    assert isinstance(local_channel, LocalChannel)
    with local_channel, grpc.insecure_channel(address) as network_channel:
        local = metadata_pb2_grpc.MetadataStub(local_channel)
        network = metadata_pb2_grpc.MetadataStub(network_channel)
        context = local.GetOrCreateContext(pb.GetOrCreateContextRequest(type="system.PipelineRun", name="r1"))
        assert network.GetOrCreateContext(pb.GetOrCreateContextRequest(type="system.PipelineRun", name="r1")) == context

        created = local.CreateExecutions(
            pb.CreateExecutionsRequest(
                executions=[pb.NewExecution(execution=pb.Execution(type="system.ContainerExecution", name="t", context_ids=[context.id]))]
            )
        )
        (execution,) = created.executions
        assert execution.id > 0 and execution.state == pb.Execution.RUNNING
        fetched = network.GetExecutions(pb.GetExecutionsRequest(ids=[execution.id])).executions
        assert [e.id for e in fetched] == [execution.id]

        bad: list[Callable[[metadata_pb2_grpc.MetadataStub], Any]] = [
            lambda stub: stub.CreateExecution(pb.CreateExecutionRequest(execution=pb.Execution(name="x"))),
            lambda stub: stub.UpdateExecution(pb.UpdateExecutionRequest(id=987654321, state=pb.Execution.FAILED)),
            lambda stub: stub.GetExecutions(pb.GetExecutionsRequest()),
            lambda stub: stub.GetContext(pb.GetContextRequest(type="system.PipelineRun", name="none")),
        ]
        for call in bad:
            over_network = _outcome(lambda call=call: call(network))
            in_process = _outcome(lambda call=call: call(local))
            assert over_network[0] in ("INVALID_ARGUMENT", "NOT_FOUND")
            assert in_process == over_network


def test_runs_in_the_callers_thread_and_copies(served: MetadataApp) -> None:
    """The call is served while the gRPC server takes no requests, in the calling
    thread; the servicer gets a copy of the request and the caller a copy of the answer."""
    assert served.server is not None
    seen: list[int] = []
    original = served.servicer.service.get_or_create_context

    def spy(new: Any) -> Any:
        seen.append(threading.get_ident())
        return original(new)

    served.servicer.service.get_or_create_context = spy  # type: ignore[method-assign]
    # The network side stops taking calls; the in-process one is still served.
    served.server.server.stop(None).wait()
    request = pb.GetOrCreateContextRequest(type="system.Pipeline", name="p")
    with make_channel(served.server.address) as channel:
        answer = metadata_pb2_grpc.MetadataStub(channel).GetOrCreateContext(request)
    assert seen == [threading.get_ident()]
    assert answer.name == "p" and answer.id > 0
    request.name = "changed"
    answer.name = "changed too"
    assert served.servicer.service.get_context("system.Pipeline", "p").name == "p"


def test_a_stopped_server_fails_as_over_the_network(served: MetadataApp) -> None:
    assert served.server is not None
    address = served.server.address
    channel = make_channel(address)
    stub = metadata_pb2_grpc.MetadataStub(channel)
    assert stub.GetOrCreateContext(pb.GetOrCreateContextRequest(type="system.Pipeline", name="p")).id > 0
    served.stop()
    code, _details = _outcome(lambda: stub.GetContext(pb.GetContextRequest(type="system.Pipeline", name="p"), timeout=2))
    assert code == "UNAVAILABLE"
    channel.close()


def test_a_closed_channel_takes_no_calls(served: MetadataApp) -> None:
    assert served.server is not None
    for channel in (make_channel(served.server.address), grpc.insecure_channel(served.server.address)):
        stub = metadata_pb2_grpc.MetadataStub(channel)
        channel.close()
        with pytest.raises(ValueError, match="closed channel"):
            stub.GetOrCreateContext(pb.GetOrCreateContextRequest(type="system.Pipeline", name="p"))
