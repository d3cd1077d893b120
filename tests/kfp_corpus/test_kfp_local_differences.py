"""The corpus on ``kfp.local``: where kfp 2.17.3's local runner differs from Stepwell.

Every pipeline in ``sources.py`` runs here on ``kfp.local`` (``SubprocessRunner(use_venv=False)``,
the pipeline function called with arguments) and the result is compared with what Stepwell
produces for the same source (the ``stepwell`` column: ``test_control_flow.py`` and
``test_run_semantics.py`` check it on Stepwell). ``CASES`` lists, per pipeline, every documented
way kfp.local's result differs; the test fails when kfp.local shows a difference that is not in
the table, or no longer shows one that is. ``docs/engine.md`` ("Where kfp.local differs") is this
table in prose.

Tasks are named by kfp.local's output layout: ``for-loop-3-iteration-0/add-2`` for a loop
iteration; condition, exit-handler and nested-pipeline DAGs add no folder. A task's value is its
parameter outputs (``Output`` unwrapped); a string equal to one of its own artifacts' URIs reads
``<artifact:NAME>``; a task with only artifact outputs reads ``<artifacts:NAMES>``.

kfp.local costs about 0.7 s per task (a ``pip install`` no-op per task), so all pipelines start
at once, each in its own process, and each runs once; only ``build_cached`` and
``build_resumable`` run again, because their Stepwell results are about a second run.
"""

from __future__ import annotations

import copy
import inspect
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.kfp_corpus import kfp_local, sources

NOT_RUN = "<not run>"
MAY_RUN = "<may run>"  # runs on kfp.local in some processes and not in others; if it runs, as on Stepwell

# ----- the table ----------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One run of a pipeline and what Stepwell produces for it."""

    arguments: dict[str, Any]
    state: str
    output: Any
    tasks: dict[str, Any]  # every task that executes a process, by kfp.local path
    errors: tuple[str, ...] = ()  # substrings of the run's error or task logs
    before: tuple[tuple[str, ...], ...] = ()  # ("write"|"delete", path[, text]); {root}, {run0}
    min_seconds: float = 0.0
    stepwell_action: str = "a new run"


@dataclass(frozen=True)
class Difference:
    """kfp.local's result differs from Stepwell's in ``what`` of run ``run``."""

    run: int
    what: str  # "state" | "output" | "tasks" | "task:<path>" | "error" (adds a substring)
    kfp_local: Any  # NOT_RUN: the task executes on Stepwell but not on kfp.local; or MAY_RUN
    reason: str


@dataclass(frozen=True)
class Case:
    build: str
    runs: tuple[Run, ...]
    differences: tuple[Difference, ...] = ()
    caching: bool = False  # local.init(enable_caching=...)
    note: str = ""


LOOP_ITEM = "the enhanced DAG orchestrator resolves the input to the loop item"
FLOATS = "kfp.local passes parameter values through protobuf Value, whose numbers are doubles"

CASES: dict[str, Case] = {
    case.build: case
    for case in [
        Case(
            "build_lightweight",
            (
                Run(
                    {"n": 3},
                    "SUCCEEDED",
                    "6:4:5:0.5/10/5/n10",
                    {
                        "add": 5,
                        "describe": "6:4:5:0.5",
                        "make-data": "<artifact:data>",
                        "sum-data": 10,
                        "split": {"half": 5, "label": "n10"},
                        "echo": "6:4:5:0.5/10/5/n10",
                    },
                ),
            ),
            (
                Difference(
                    0,
                    "error",
                    "AssertionError: [1.0, 2.0, 3.0]",
                    "whole numbers inside list and dict pipeline parameters reach user code as float "
                    f"({FLOATS}); Stepwell, like KFP's Go backend, gives int",
                ),
                Difference(0, "task:describe", NOT_RUN, "describe fails on the floats"),
                *(
                    Difference(
                        0,
                        f"task:{name}",
                        MAY_RUN,
                        "the plain-DAG orchestrator runs one task at a time, in a depth-first order over a "
                        "protobuf map that changes from process to process, and stops at the first failed "
                        "task; Stepwell runs every task whose inputs are ready",
                    )
                    for name in ("make-data", "sum-data", "split")
                ),
                Difference(0, "task:echo", NOT_RUN, "its upstream describe failed"),
                Difference(0, "state", "FAILED", "describe failed"),
                Difference(0, "output", None, "describe failed"),
            ),
        ),
        Case(
            "build_conditions",
            (
                Run(
                    {"n": 3},
                    "SUCCEEDED",
                    "four",
                    {"add": 4, "echo-2": "four", "flip": "four", "echo-4": "nested-true"},
                ),
            ),
        ),
        Case(
            "build_loops",
            (
                Run(
                    {"xs": [1, 2, 3]},
                    "SUCCEEDED",
                    "20|11,12,13|x,y|1-2-3-4",
                    {
                        "add": 10,
                        **{f"for-loop-2-iteration-{i}/double": 2 * (i + 1) for i in range(4)},
                        **{f"for-loop-2-iteration-{i}/write-item": "<artifacts:out>" for i in range(4)},
                        **{f"for-loop-3-iteration-{i}/add-2": 11 + i for i in range(3)},
                        "for-loop-4-iteration-0/echo": "x",
                        "for-loop-4-iteration-1/echo": "y",
                        "for-loop-4-iteration-0/add-3": 2,
                        "for-loop-4-iteration-1/add-3": 3,
                        "for-loop-6-iteration-0/for-loop-7-iteration-0/double-2": 2,
                        "for-loop-6-iteration-0/for-loop-7-iteration-1/double-2": 4,
                        "for-loop-6-iteration-1/for-loop-7-iteration-0/double-2": 6,
                        "total": 20,
                        "join-texts": "11,12,13",
                        "join-texts-2": "x,y",
                        "read-all": "1-2-3-4",
                        "echo-2": "20|11,12,13|x,y|1-2-3-4",
                    },
                ),
            ),
            (
                *(
                    Difference(
                        0,
                        f"task:for-loop-3-iteration-{i}/add-2",
                        2 * (i + 1),
                        f"add(a=x, b=base.output) inside ParallelFor(xs): b, wired from a task outside the "
                        f"loop, resolves to the loop item ({LOOP_ITEM}), so x + x instead of x + 10; "
                        "the compiled IR is correct",
                    )
                    for i in range(3)
                ),
                Difference(
                    0,
                    "task:join-texts",
                    "2.0,4.0,6.0",
                    f"Collected int outputs arrive as floats ({FLOATS}), and they are the wrong sums (above)",
                ),
                Difference(
                    0,
                    "error",
                    "AssertionError: [2.0, 4.0, 6.0, 8.0]",
                    "Collected int outputs arrive as floats, so total(values: list) sees 2.0, 4.0, ...",
                ),
                Difference(0, "task:total", NOT_RUN, "total fails on the floats"),
                Difference(0, "task:echo-2", NOT_RUN, "its upstream total failed"),
                Difference(0, "state", "FAILED", "total failed"),
                Difference(0, "output", None, "total failed"),
            ),
        ),
        Case(
            "build_exit_handler",
            (
                Run(
                    {},
                    "FAILED",
                    None,
                    {"echo": "first", "echo-2": "cleanup", "report": "FAILED:exit-handler-1"},
                    errors=("RuntimeError: boom",),
                ),
            ),
        ),
        Case(
            "build_nested",
            (
                Run(
                    {"x": 4, "uri": "{root}/imported.txt"},
                    "SUCCEEDED",
                    28,
                    {"add": 5, "double": 10, "add-2": 11, "double-2": 22, "sum-data": 6, "add-3": 28},
                    before=(("write", "{root}/imported.txt", "1\n2\n3\n"),),
                ),
            ),
        ),
        Case(
            "build_container",
            (
                Run(
                    {"name": "x"},
                    "SUCCEEDED",
                    "hello-x|opt=yes|<run id>|shell-concat#hello-x-2|no-opt|<run id>|shell-concat-2",
                    {
                        "shell-concat": {"out": "hello-x|opt=yes|<run id>|shell-concat"},
                        "shell-concat-2": {"out": "hello-x-2|no-opt|<run id>|shell-concat-2"},
                        "echo": "hello-x|opt=yes|<run id>|shell-concat#hello-x-2|no-opt|<run id>|shell-concat-2",
                    },
                ),
            ),
            (
                Difference(
                    0,
                    "error",
                    "The SubprocessRunner only supports running Lightweight Python Components. "
                    "You are attempting to run a Container Component.",
                    "SubprocessRunner refuses container components (DockerRunner would pull alpine:3.19); "
                    "Stepwell runs the command as argv in a local process and warns that the image is not pulled",
                ),
                Difference(0, "state", "ERROR", "the pipeline is refused before any task runs"),
                Difference(0, "tasks", {}, "the pipeline is refused before any task runs"),
                Difference(0, "output", None, "the pipeline is refused before any task runs"),
            ),
        ),
        Case(
            "build_cached",
            (
                Run(
                    {"path": "{root}/calls.txt"},
                    "SUCCEEDED",
                    2,
                    {"count-calls": 2, "make-data": "<artifact:data>", "sum-data": 1, "count-calls-2": 2},
                ),
                # the same arguments again: everything but the task with caching disabled is a hit
                Run({"path": "{root}/calls.txt"}, "SUCCEEDED", 2, {"count-calls-2": 2}),
                # the first run's make-data artifact is gone
                Run(
                    {"path": "{root}/calls.txt"},
                    "SUCCEEDED",
                    2,
                    {"make-data": "<artifact:data>", "sum-data": 1, "count-calls-2": 2},
                    before=(("delete", "{run0}/make-data"),),
                ),
            ),
            caching=True,
            note="kfp.local caches only with local.init(enable_caching=True) (Stepwell caches by default); "
            "its key is sha256(component name, image, command, arguments, env). Both honour "
            "set_caching_options(False) and both refuse a hit whose artifact file is gone",
        ),
        Case(
            "build_retry",
            (
                Run(
                    {"marker": "{root}/marker"},
                    "SUCCEEDED",
                    "ok",
                    {"flaky": "ok"},
                    errors=("first attempt fails",),
                    min_seconds=1.0,
                ),
            ),
        ),
        Case(
            "build_resumable",
            (
                Run(
                    {"path": "{root}/needed.txt", "calls": "{root}/calls.txt"},
                    "FAILED",
                    None,
                    {"count-calls": 2},
                    errors=("FileNotFoundError",),
                ),
                Run(
                    {"path": "{root}/needed.txt", "calls": "{root}/calls.txt"},
                    "SUCCEEDED",
                    "now here",
                    {"needs-file": "now here", "echo": "now here"},
                    before=(("write", "{root}/needed.txt", "now here"),),
                    stepwell_action="RetryRun of run 0",
                ),
            ),
            (
                Difference(
                    1,
                    "task:count-calls",
                    2,
                    "kfp.local has no retry of a failed run; running the pipeline again re-executes the task "
                    "that had succeeded (Stepwell's RetryRun re-executes only failed and never-started tasks)",
                ),
            ),
        ),
        Case(
            "build_sleepy",
            (
                Run(
                    {"seconds": 0.2},
                    "SUCCEEDED",
                    None,
                    {"sleep": "slept", "report": "SUCCEEDED:exit-handler-1"},
                ),
            ),
            note="Stepwell's test runs it with a task timeout, a run timeout and a terminate; kfp.local has "
            "none of the three (see test_kfp_local_has_no_timeouts_terminate_or_retry), so it runs only "
            "to completion here",
        ),
    ]
}

# Differences of kfp.local 2.17.3 that the corpus does not exercise, each with the text in
# kfp.local's source that shows it (checked below, so a change in kfp.local is noticed).
NOT_IN_CORPUS: dict[str, tuple[str, str]] = {
    "cpu/memory/accelerator settings are ignored (with a warning)": (
        "orchestrator/task_executor.py",
        "no effect in the current local runner and will be ignored",
    ),
    "an importer of a remote URI (s3://, gs://, minio://) only warns; the task sees no file": (
        "importer_handler.py",
        "you will only be able to read and write to/from local files",
    ),
    "a bare component called with an input artifact constant is refused": (
        "executor_input_utils.py",
        "Input artifacts are not yet supported for local execution",
    ),
}


# ----- running ------------------------------------------------------------------------


def expected_on_kfp_local(case: Case) -> list[dict[str, Any]]:
    """Stepwell's runs with the documented differences applied."""
    runs = [
        {"state": r.state, "output": r.output, "tasks": dict(r.tasks), "errors": list(r.errors)} for r in case.runs
    ]
    for diff in case.differences:
        run = runs[diff.run]
        if diff.what == "error":
            run["errors"].append(diff.kfp_local)
        elif diff.what.startswith("task:"):
            name = diff.what[len("task:") :]
            if diff.kfp_local == NOT_RUN:
                run["tasks"].pop(name)
            else:
                run["tasks"][name] = diff.kfp_local
        else:
            run[diff.what] = copy.deepcopy(diff.kfp_local)
    return runs


@pytest.fixture(scope="module")
def kfp_local_results(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, kfp_local.LocalResult]]:
    root = tmp_path_factory.mktemp("kfp-local")
    started = time.monotonic()
    # the longest (build_loops, ~25 tasks) first; two at a time keeps kfp's pip no-ops off each other's CPU
    order = sorted(CASES.values(), key=lambda c: -sum(len(r.tasks) for r in c.runs))

    def run(case: Case) -> tuple[str, kfp_local.LocalResult]:
        folder = root / case.build
        runs = [{"arguments": r.arguments, "before": [list(a) for a in r.before]} for r in case.runs]
        process = kfp_local.launch(case.build, runs, folder, caching=case.caching)
        return case.build, kfp_local.collect(process, folder, timeout=120)

    with ThreadPoolExecutor(max_workers=3) as pool:
        results = dict(pool.map(run, order))
    print(f"kfp.local corpus: {time.monotonic() - started:.1f}s")
    yield results


def _output(run: kfp_local.LocalRun) -> Any:
    if isinstance(run.output, dict):
        return run.output.get("Output") if run.output else None
    return run.output


def test_every_corpus_pipeline_is_in_the_table() -> None:
    builds = {name for name, _ in inspect.getmembers(sources, inspect.isfunction) if name.startswith("build_")}
    assert builds == set(CASES)


@pytest.mark.parametrize("build", sorted(CASES))
def test_kfp_local_matches_stepwell_or_differs_as_documented(
    build: str, kfp_local_results: dict[str, kfp_local.LocalResult]
) -> None:
    case = CASES[build]
    result = kfp_local_results[build]
    tail = result.log[-4000:]
    assert len(result.runs) == len(case.runs), f"kfp.local process exited {result.returncode}:\n{tail}"
    for index, (expected, run, stepwell) in enumerate(zip(expected_on_kfp_local(case), result.runs, case.runs, strict=True)):
        observed = {"state": run.state, "output": _output(run), "tasks": dict(run.tasks)}
        for name in [n for n, v in expected["tasks"].items() if v == MAY_RUN]:
            del expected["tasks"][name]
            if name in observed["tasks"]:
                assert observed["tasks"].pop(name) == stepwell.tasks[name], f"{build} run {index}: {name}"
        assert observed == {k: expected[k] for k in observed}, f"{build} run {index}: {run.error}\n{tail}"
        text = result.text()
        for needle in expected["errors"]:
            assert needle in text, f"{build} run {index}: {needle!r} not in kfp.local's error or logs\n{tail}"
        assert run.seconds >= stepwell.min_seconds
    for diff in case.differences:  # every row documents a real difference from Stepwell
        stepwell = case.runs[diff.run]
        if diff.what == "error":
            assert diff.kfp_local not in stepwell.errors
        elif diff.what.startswith("task:"):
            assert stepwell.tasks.get(diff.what[len("task:") :], NOT_RUN) != diff.kfp_local
        else:
            assert getattr(stepwell, diff.what) != diff.kfp_local
        assert diff.reason


def test_kfp_local_has_no_timeouts_terminate_or_retry() -> None:
    """Stepwell's run and task timeouts, terminate and retry-from-failure have no kfp.local
    counterpart: local.init takes no such option and a pipeline call blocks until it ends."""
    from kfp import local

    parameters = inspect.signature(local.init).parameters
    assert list(parameters) == [
        "runner",
        "pipeline_root",
        "workspace_root",
        "raise_on_error",
        "enable_caching",
        "cache_root",
    ]
    assert parameters["enable_caching"].default is False  # Stepwell caches by default
    assert not [name for name in dir(local) if "retry" in name.lower() or "cancel" in name.lower()]


@pytest.mark.parametrize("difference", sorted(NOT_IN_CORPUS))
def test_differences_outside_the_corpus_are_still_in_kfp_local(difference: str) -> None:
    import kfp.local

    path, text = NOT_IN_CORPUS[difference]
    assert text in (Path(kfp.local.__file__).parent / path).read_text()
