"""KFP-compiled pipelines (real kfp 2.17.3) run unchanged on Stepwell: components and control flow."""

from __future__ import annotations

from pathlib import Path

from tests.kfp_corpus import sources
from tests.kfp_corpus.harness import Corpus, compile_pipeline, output, state, task_output, tasks


def _failure(status) -> str:  # type: ignore[no-untyped-def]
    return status.error + "\n" + "\n".join(f"{t.task_id}: {t.error}\n{t.log_tail}" for t in status.task_details if t.error)


def test_lightweight_components_parameters_artifacts_and_int_typing(corpus: Corpus, tmp_path: Path) -> None:
    spec = compile_pipeline(sources.build_lightweight, tmp_path)
    status = corpus.run(spec, {"n": 3})
    assert state(status) == "SUCCEEDED", _failure(status)
    # describe: sum(xs)=6, cfg.k=4, n=add(3,2)=5; make_data(5 rows) sums to 10; split(10) -> 5, "n10"
    assert output(status) == "6:4:5:0.5/10/5/n10"
    by_id = tasks(status)
    assert set(by_id) >= {"add", "describe", "make-data", "sum-data", "split", "echo"}
    data = by_id["make-data"].outputs.artifacts["data"].artifacts[0]
    assert data.uri.startswith(corpus.artifact_root) and Path(data.uri).read_text().startswith("0\n1")
    assert data.artifact_id > 0 and data.metadata["rows"] == 5
    # the artifact's uri as the user code saw it is the recorded uri
    assert task_output(by_id["make-data"]) == data.uri


def test_conditions_elif_else_oneof_nested_and_skipped(corpus: Corpus, tmp_path: Path) -> None:
    spec = compile_pipeline(sources.build_conditions, tmp_path)
    four = corpus.start(spec, {"n": 3})
    big = corpus.start(spec, {"n": 7, "word": "tails", "ratio": 3.5})
    status = corpus.wait(four)
    assert state(status) == "SUCCEEDED", _failure(status)
    assert output(status) == "four"
    by_id = tasks(status)
    skipped = {tid for tid, t in by_id.items() if state(t) == "SKIPPED"}
    assert "condition-branches-1/condition-2" in skipped and "condition-branches-1/condition-4" in skipped
    assert by_id["condition-branches-1/condition-3/echo-2"].display_name == "echo-2"
    assert state(by_id["condition-5/condition-6/echo-4"]) == "SUCCEEDED"
    assert "condition-7" in skipped and "condition-7/echo-5" not in by_id  # ratio 2.5 >= 3.0 is false
    status = corpus.wait(big)
    assert state(status) == "SUCCEEDED", _failure(status)
    assert output(status) == "big"
    by_id = tasks(status)
    assert state(by_id["condition-5"]) == "SKIPPED" and state(by_id["condition-7"]) == "SUCCEEDED"


def test_parallel_for_collected_nested_selectors_and_limit(corpus: Corpus, tmp_path: Path) -> None:
    spec = compile_pipeline(sources.build_loops, tmp_path)
    status = corpus.run(spec, {"xs": [1, 2, 3]})
    assert state(status) == "SUCCEEDED", _failure(status)
    # doubled [2,4,6,8] -> 20; base 10 + xs -> 11,12,13; labels from dict items; files in iteration order
    assert output(status) == "20|11,12,13|x,y|1-2-3-4"
    by_id = tasks(status)
    assert state(by_id["for-loop-2[0]/double"]) == "SUCCEEDED"
    assert task_output(by_id["for-loop-2[3]/double"]) == 8
    assert task_output(by_id["for-loop-4[1]/add-3"]) == 3  # row.a + 1 through parseJson(string_value)["a"]
    inner = sorted(tid for tid in by_id if tid.endswith("/double-2"))
    assert inner == [
        "for-loop-6[0]/for-loop-7[0]/double-2",
        "for-loop-6[0]/for-loop-7[1]/double-2",
        "for-loop-6[1]/for-loop-7[0]/double-2",
    ]
    assert task_output(by_id["for-loop-6[0]/for-loop-7[1]/double-2"]) == 4
    # parallelismLimit 2: never more than two iterations of for-loop-2 overlapped
    spans = sorted(
        (by_id[f"for-loop-2[{i}]"].start_time.ToNanoseconds(), by_id[f"for-loop-2[{i}]"].end_time.ToNanoseconds())
        for i in range(4)
    )
    for i, (start, _) in enumerate(spans):
        assert sum(1 for s, e in spans[:i] if e > start) <= 1


def test_exit_handler_final_status_and_ignore_upstream_failure(corpus: Corpus, tmp_path: Path) -> None:
    spec = compile_pipeline(sources.build_exit_handler, tmp_path)
    status = corpus.run(spec)
    assert state(status) == "FAILED"
    assert "boom" in status.error or "fail" in status.error
    by_id = tasks(status)
    assert state(by_id["exit-handler-1"]) == "FAILED" and by_id["exit-handler-1"].display_name == "guarded"
    assert state(by_id["report"]) == "SUCCEEDED"
    assert task_output(by_id["report"]) == "FAILED:exit-handler-1"
    assert state(by_id["exit-handler-1/echo-2"]) == "SUCCEEDED"  # ignore_upstream_failure
    assert "exit-handler-1/echo-3" not in by_id  # downstream of the failure never starts


def test_nested_pipelines_outputs_and_importer(corpus: Corpus, tmp_path: Path) -> None:
    data = tmp_path / "imported.txt"
    data.write_text("1\n2\n3\n")
    spec = compile_pipeline(sources.build_nested, tmp_path)
    status = corpus.run(spec, {"x": 4, "uri": str(data)})
    assert state(status) == "SUCCEEDED", _failure(status)
    # inner(4) = 10, inner(10) = 22, imported sum = 6 -> 28
    assert output(status) == 28
    by_id = tasks(status)
    assert task_output(by_id["inner"]) == 10 and task_output(by_id["inner-2"]) == 22
    assert by_id["importer"].outputs.artifacts["artifact"].artifacts[0].uri == str(data)


def test_container_component_placeholders_and_image_warning(corpus: Corpus, tmp_path: Path) -> None:
    spec = compile_pipeline(sources.build_container, tmp_path)
    run_id = corpus.start(spec, {"name": "x"})
    status = corpus.wait(run_id)
    assert state(status) == "SUCCEEDED", _failure(status)
    assert output(status) == f"hello-x|opt=yes|{run_id}|shell-concat#hello-x-2|no-opt|{run_id}|shell-concat-2"
    log = corpus.stub.GetTaskLog(_log_request(run_id, "shell-concat"), timeout=10).text
    assert "image 'alpine:3.19' is not pulled" in log


def _log_request(run_id: str, task_id: str):  # type: ignore[no-untyped-def]
    from stepwell.v1 import scheduler_pb2

    return scheduler_pb2.GetTaskLogRequest(run_id=run_id, task_id=task_id)
