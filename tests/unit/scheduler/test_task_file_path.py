"""Task file names: one flat folder per run, a name per task and attempt that is a valid,
distinct file name whatever the task's qualified name."""

from __future__ import annotations

from pathlib import Path

from stepwell_scheduler.engine.processes import task_file_path


def test_names_are_flat_distinct_and_short_enough() -> None:
    root = Path("/work")
    names = [
        "train",
        "for-loop-2[0]/noop",
        "for-loop-2[0]%2Fnoop",  # a name that looks like an escaped one stays distinct
        "a" * 600,
        "a" * 599 + "b",
        "é" * 300,
    ]
    paths = [task_file_path(root, "run-1", name, 1) for name in names]
    assert len(set(paths)) == len(paths)
    for path in paths:
        assert path.parent == root / "runs" / "run-1" / "task-files"
        assert "/" not in path.name
        assert len(path.name.encode()) <= 255
        assert path.name.endswith(".a1.json")
    assert task_file_path(root, "run-1", "train", 2).name == "train.a2.json"
