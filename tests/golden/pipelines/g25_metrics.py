"""Metrics, ClassificationMetrics, SlicedClassificationMetrics, HTML and Markdown outputs."""

from stepwell import dsl
from stepwell.dsl import (
    HTML,
    ClassificationMetrics,
    Input,
    Markdown,
    Metrics,
    Output,
    SlicedClassificationMetrics,
)


@dsl.component
def evaluate(
    metrics: Output[Metrics],
    cm: Output[ClassificationMetrics],
    sliced: Output[SlicedClassificationMetrics],
    page: Output[HTML],
    notes: Output[Markdown],
):
    metrics.log_metric("accuracy", 0.9)
    metrics.log_metric("loss", 0.1)
    cm.log_roc_curve([0.0, 0.5, 1.0], [0.0, 0.8, 1.0], [1.0, 0.5, 0.0])
    cm.log_confusion_matrix(["cat", "dog"], [[8, 2], [1, 9]])
    sliced.load_roc_readings("all", [[0.5, 0.8, 0.1]])
    with open(page.path, "w") as f:
        f.write("<h1>ok</h1>")
    with open(notes.path, "w") as f:
        f.write("# ok")


@dsl.component
def read(metrics: Input[Metrics]) -> float:
    return metrics.metadata["accuracy"]


@dsl.pipeline
def metrics_pipeline() -> float:
    e = evaluate()
    return read(metrics=e.outputs["metrics"]).output


TARGET = metrics_pipeline
