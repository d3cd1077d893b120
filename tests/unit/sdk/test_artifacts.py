"""The artifact classes user code sees inside a task."""

from __future__ import annotations

from pathlib import Path

import pytest

from stepwell import dsl
from stepwell.dsl.interface import parse_docstring


def test_path_follows_uri_unless_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEPWELL_LOCAL_ARTIFACT_ROOT", str(tmp_path))
    ds = dsl.Dataset(name="ds", uri="minio://bucket/a/ds")
    assert ds.path == str(tmp_path / "minio" / "bucket" / "a" / "ds")
    assert dsl.Dataset(uri="/data/x").path == "/data/x"
    ds.path = "/elsewhere"
    assert ds.path == "/elsewhere" and ds.custom_path == "/elsewhere"


def test_metrics_live_in_metadata() -> None:
    m = dsl.Metrics(name="m")
    m.log_metric("accuracy", 0.9)
    assert m.metadata == {"accuracy": 0.9}


def test_classification_metrics() -> None:
    cm = dsl.ClassificationMetrics()
    cm.log_roc_curve([0.0, 0.5], [0.1, 0.9], [1.0, 0.5])
    cm.log_confusion_matrix(["cat", "dog"], [[3, 1], [0, 4]])
    cm.log_confusion_matrix_cell("dog", "cat", 2)
    assert cm.metadata["confidenceMetrics"][1] == {
        "confidenceThreshold": 0.5,
        "recall": 0.9,
        "falsePositiveRate": 0.5,
    }
    assert cm.metadata["confusionMatrix"] == {
        "annotationSpecs": [{"displayName": "cat"}, {"displayName": "dog"}],
        "rows": [{"row": [3, 1]}, {"row": [2, 4]}],
    }
    with pytest.raises(ValueError, match="unknown category 'cow'"):
        cm.log_confusion_matrix_row("cow", [1, 1])


def test_sliced_classification_metrics() -> None:
    sliced = dsl.SlicedClassificationMetrics()
    sliced.load_roc_readings("all", [[0.5, 0.8, 0.1]])
    sliced.log_roc_reading("all", 0.9, 0.6, 0.05)
    (entry,) = sliced.metadata["evaluationSlices"]
    assert entry["slice"] == "all"
    assert len(entry["sliceClassificationMetrics"]["confidenceMetrics"]) == 2


def test_schema_titles() -> None:
    titles = {
        cls.__name__: cls.schema_title
        for cls in (dsl.Artifact, dsl.Dataset, dsl.Model, dsl.Metrics, dsl.HTML, dsl.Markdown)
    }
    assert titles == {name: f"system.{name}" for name in titles}
    assert dsl.ClassificationMetrics.schema_title == "system.ClassificationMetrics"


def test_google_docstrings() -> None:
    doc = """Short line.

    Longer text
    over two lines.

    Args:
        a: First,
            continued.
        b (int): Second.

    Returns:
        out: The result.
    """
    description, args, returns = parse_docstring(doc)
    assert description == "Short line.\nLonger text\nover two lines."
    assert args == {"a": "First,\ncontinued.", "b": "Second."}
    assert returns == {"out": "The result."}
