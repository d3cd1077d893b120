"""The engine's recorder thread: calls run one at a time, in the order given, off the
caller's thread; each end is announced; a failing call fails only its own future."""

from __future__ import annotations

import threading

import pytest

from stepwell_scheduler.engine.recorder import Recorder


def test_calls_run_in_order_on_their_own_thread() -> None:
    done = threading.Semaphore(0)
    recorder = Recorder(done.release)
    ran: list[tuple[int, str]] = []
    gate = threading.Event()

    def call(i: int) -> int:
        if i == 0:
            gate.wait(5)  # the later calls queue behind the first
        ran.append((i, threading.current_thread().name))
        return i * 10

    futures = [recorder.submit(lambda i=i: call(i)) for i in range(5)]
    assert not any(f.done() for f in futures)
    gate.set()
    assert [f.result(timeout=5) for f in futures] == [0, 10, 20, 30, 40]
    assert [i for i, _ in ran] == [0, 1, 2, 3, 4]
    assert {name for _, name in ran} == {"metadata-recorder"}
    for _ in futures:
        assert done.acquire(timeout=5)  # one announcement per call
    recorder.shutdown()


def test_a_failing_call_fails_its_future_only() -> None:
    recorder = Recorder(lambda: None)

    def boom() -> int:
        raise ValueError("the metadata service said no")

    failed = recorder.submit(boom)
    after = recorder.submit(lambda: 7)
    with pytest.raises(ValueError, match="said no"):
        failed.result(timeout=5)
    assert after.result(timeout=5) == 7
    recorder.shutdown()


def test_shutdown_waits_for_the_calls_given_but_not_forever() -> None:
    recorder = Recorder(lambda: None)
    finished = recorder.submit(lambda: "ok")
    stuck = threading.Event()
    hung = recorder.submit(lambda: stuck.wait(30))
    recorder.shutdown(timeout=0.2)  # returns although a call hangs
    assert finished.result(timeout=0) == "ok"
    assert not hung.done()
    stuck.set()
    assert hung.result(timeout=5) is True
