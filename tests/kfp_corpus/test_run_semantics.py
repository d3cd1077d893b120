"""Caching, retries, timeouts, terminate, retry-from-failure and logs on KFP-compiled pipelines."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from stepwell.v1 import metadata_pb2, scheduler_pb2
from tests.kfp_corpus import sources
from tests.kfp_corpus.harness import Corpus, compile_pipeline, output, state, task_output, tasks


def _calls(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_cache_hit_reuses_artifacts_refuses_missing_ones_and_can_be_disabled(corpus: Corpus, tmp_path: Path) -> None:
    calls = tmp_path / "calls.txt"
    spec = compile_pipeline(sources.build_cached, tmp_path)
    first = corpus.run(spec, {"path": str(calls)})
    assert state(first) == "SUCCEEDED" and _calls(calls) == 2  # count-calls + the uncached count-calls-2
    assert output(first) == 2  # sum(range(2)) = 1, +1
    second = corpus.run(spec, {"path": str(calls)})
    assert state(second) == "SUCCEEDED" and output(second) == 2
    assert set(second.cached_task_ids) == {"count-calls", "make-data", "sum-data"}
    assert {t.task_id for t in second.task_details if t.cached} == set(second.cached_task_ids)
    assert not any(t.cached for t in first.task_details)
    assert _calls(calls) == 3  # only the task with caching disabled ran again
    a1 = tasks(first)["make-data"].outputs.artifacts["data"].artifacts[0]
    a2 = tasks(second)["make-data"].outputs.artifacts["data"].artifacts[0]
    assert (a1.uri, a1.artifact_id) == (a2.uri, a2.artifact_id)  # the same artifact record

    entries = corpus.metadata_stub.ListCacheEntries(
        metadata_pb2.ListCacheEntriesRequest(pipeline_name="corpus-cached"), timeout=10
    ).entries
    assert {e.task_name for e in entries} == {"count-calls", "make-data", "sum-data"}

    # A reused artifact that is gone from the store refuses the hit: make-data runs again.
    shutil.rmtree(Path(a1.uri).parent)
    third = corpus.run(spec, {"path": str(calls)})
    assert state(third) == "SUCCEEDED"
    assert "make-data" not in third.cached_task_ids and "count-calls" in third.cached_task_ids

    # Per run: nothing is taken from the cache.
    fourth = corpus.run(spec, {"path": str(calls)}, disable_cache=True)
    assert state(fourth) == "SUCCEEDED" and list(fourth.cached_task_ids) == []


def test_retry_policy_with_backoff(corpus: Corpus, tmp_path: Path) -> None:
    spec = compile_pipeline(sources.build_retry, tmp_path)
    started = time.monotonic()
    status = corpus.run(spec, {"marker": str(tmp_path / "marker")})
    assert state(status) == "SUCCEEDED", status.error
    assert output(status) == "ok"
    assert time.monotonic() - started >= 1.0  # backoffDuration 1s before the second attempt


def test_task_timeout_and_run_timeout(corpus: Corpus, tmp_path: Path) -> None:
    spec = compile_pipeline(sources.build_sleepy, tmp_path)
    started = time.monotonic()
    task_limited = corpus.start(spec, {"seconds": 30.0}, task_timeout_seconds=0.5)
    run_limited = corpus.start(spec, {"seconds": 30.0}, timeout_seconds=1.0)
    status = corpus.wait(task_limited, timeout=20)
    assert state(status) == "FAILED" and "timed out" in status.error
    assert state(tasks(status)["report"]) == "SUCCEEDED"  # the exit handler still ran
    status = corpus.wait(run_limited, timeout=20)
    assert state(status) == "FAILED" and "timed out" in status.error
    assert task_output(tasks(status)["report"]) == "CANCELED:exit-handler-1"
    assert time.monotonic() - started < 15


def test_terminate_kills_tasks_runs_exit_handler_and_ends_canceled(corpus: Corpus, tmp_path: Path) -> None:
    spec = compile_pipeline(sources.build_sleepy, tmp_path)
    run_id = corpus.start(spec, {"seconds": 60.0})
    deadline = time.monotonic() + 20
    while "exit-handler-1/sleep" not in {t.task_id for t in corpus.status(run_id).task_details if state(t) == "RUNNING"}:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    corpus.stub.CancelRun(scheduler_pb2.CancelRunRequest(run_id=run_id), timeout=10)
    status = corpus.wait(run_id, timeout=20)
    assert state(status) == "CANCELED"
    by_id = tasks(status)
    assert state(by_id["exit-handler-1/sleep"]) == "CANCELED"
    assert state(by_id["report"]) == "SUCCEEDED" and task_output(by_id["report"]) == "CANCELED:exit-handler-1"


def test_retry_from_failure_reruns_only_failed_tasks_and_logs_stay_readable(corpus: Corpus, tmp_path: Path) -> None:
    needed, calls = tmp_path / "needed.txt", tmp_path / "calls.txt"
    spec = compile_pipeline(sources.build_resumable, tmp_path)
    run_id = corpus.start(spec, {"path": str(needed), "calls": str(calls)})
    status = corpus.wait(run_id)
    assert state(status) == "FAILED" and _calls(calls) == 1
    log = corpus.stub.GetTaskLog(scheduler_pb2.GetTaskLogRequest(run_id=run_id, task_id="needs-file"), timeout=10)
    assert "FileNotFoundError" in log.text and log.log_uri.endswith("executor-logs")
    assert Path(log.log_uri).exists()

    needed.write_text("now here")
    corpus.stub.RetryRun(scheduler_pb2.RetryTasksRequest(run_id=run_id), timeout=10)
    status = corpus.wait(run_id)
    assert state(status) == "SUCCEEDED", status.error
    assert output(status) == "now here"
    assert _calls(calls) == 1  # the succeeded first task kept its outputs
    log = corpus.stub.GetTaskLog(scheduler_pb2.GetTaskLogRequest(run_id=run_id, task_id="echo"), timeout=10)
    assert "echo: now here" in log.text
