"""Artifact classes and the ``Input``/``Output`` annotations shared by the SDK and the executor.

These live under ``stepwell.runtime`` (standard library only) because a lightweight
component's source is executed inside the task with ``from stepwell.runtime.executor
import *``; ``stepwell.dsl`` re-exports the very same classes, so an annotation written
against ``stepwell.dsl`` at compile time means the same thing at run time.

``Input[Dataset]`` is ``Annotated[Dataset, <input marker>]``, so type checkers see a
``Dataset`` while the SDK and the executor can tell inputs from outputs.
"""

from __future__ import annotations

import typing
from typing import Annotated, Any, TypeVar

from stepwell.runtime.paths import local_path_for_uri

__all__ = [
    "HTML",
    "Artifact",
    "ClassificationMetrics",
    "Dataset",
    "Input",
    "InputPath",
    "Markdown",
    "Metrics",
    "Model",
    "Output",
    "OutputPath",
    "PipelineTaskFinalStatus",
    "SlicedClassificationMetrics",
]

SCHEMA_VERSION = "0.0.1"


class Artifact:
    """A file or folder in the artifact store, plus metadata.

    ``uri`` is where the artifact lives in the store; ``path`` is where user code reads
    or writes it on the task's local disk (derived from ``uri`` unless set explicitly).
    """

    schema_title = "system.Artifact"
    schema_version = SCHEMA_VERSION

    def __init__(
        self,
        name: str | None = None,
        uri: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self.name = name or ""
        self.uri = uri or ""
        self.metadata: dict[str, Any] = dict(metadata) if metadata else {}
        self.custom_path: str | None = None

    @property
    def path(self) -> str:
        """The artifact's local path: ``custom_path`` if set, else mapped from ``uri``."""
        if self.custom_path is not None:
            return self.custom_path
        return local_path_for_uri(self.uri)

    @path.setter
    def path(self, value: str) -> None:
        self.custom_path = value

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, uri={self.uri!r}, "
            f"metadata={self.metadata!r})"
        )


class Dataset(Artifact):
    """A dataset artifact."""

    schema_title = "system.Dataset"


class Model(Artifact):
    """A trained model artifact."""

    schema_title = "system.Model"


class Metrics(Artifact):
    """Scalar metrics, carried in ``metadata`` (no file is written)."""

    schema_title = "system.Metrics"

    def log_metric(self, metric: str, value: float) -> None:
        """Record ``metadata[metric] = value``."""
        self.metadata[metric] = value


class ClassificationMetrics(Artifact):
    """ROC curve and confusion matrix, carried in ``metadata``."""

    schema_title = "system.ClassificationMetrics"

    def log_roc_data_point(self, fpr: float, tpr: float, threshold: float) -> None:
        """Append one point to ``metadata['confidenceMetrics']``."""
        self.metadata.setdefault("confidenceMetrics", []).append(
            {"confidenceThreshold": threshold, "recall": tpr, "falsePositiveRate": fpr}
        )

    def log_roc_curve(self, fpr: list[float], tpr: list[float], threshold: list[float]) -> None:
        """Record a whole ROC curve (three lists of equal length)."""
        if not len(fpr) == len(tpr) == len(threshold):
            raise ValueError("fpr, tpr and threshold must have the same length")
        for f, t, th in zip(fpr, tpr, threshold, strict=True):
            self.log_roc_data_point(f, t, th)

    def set_confusion_matrix_categories(self, categories: list[str]) -> None:
        """Start a confusion matrix over ``categories`` with all cells zero."""
        self.metadata["confusionMatrix"] = {
            "annotationSpecs": [{"displayName": c} for c in categories],
            "rows": [{"row": [0] * len(categories)} for _ in categories],
        }

    def _matrix(self) -> dict[str, Any]:
        matrix = self.metadata.get("confusionMatrix")
        if matrix is None:
            raise ValueError("call set_confusion_matrix_categories first")
        return typing.cast(dict[str, Any], matrix)

    def _index(self, category: str) -> int:
        names = [spec["displayName"] for spec in self._matrix()["annotationSpecs"]]
        if category not in names:
            raise ValueError(f"unknown category {category!r}; categories are {names}")
        return names.index(category)

    def log_confusion_matrix_row(self, row_category: str, row: list[int]) -> None:
        """Set the row of ``row_category``."""
        matrix = self._matrix()
        if len(row) != len(matrix["annotationSpecs"]):
            raise ValueError("row length must equal the number of categories")
        matrix["rows"][self._index(row_category)] = {"row": list(row)}

    def log_confusion_matrix_cell(self, row_category: str, col_category: str, value: int) -> None:
        """Set one cell of the confusion matrix."""
        self._matrix()["rows"][self._index(row_category)]["row"][self._index(col_category)] = value

    def log_confusion_matrix(self, categories: list[str], matrix: list[list[int]]) -> None:
        """Record a whole confusion matrix."""
        self.set_confusion_matrix_categories(categories)
        for category, row in zip(categories, matrix, strict=True):
            self.log_confusion_matrix_row(category, row)


class SlicedClassificationMetrics(Artifact):
    """Classification metrics per slice, carried in ``metadata['evaluationSlices']``."""

    schema_title = "system.SlicedClassificationMetrics"

    def _slice(self, slice_name: str) -> ClassificationMetrics:
        slices = self.metadata.setdefault("evaluationSlices", [])
        for entry in slices:
            if entry.get("slice") == slice_name:
                metrics = ClassificationMetrics()
                metrics.metadata = entry["sliceClassificationMetrics"]
                return metrics
        metrics = ClassificationMetrics()
        slices.append({"slice": slice_name, "sliceClassificationMetrics": metrics.metadata})
        return metrics

    def log_roc_reading(self, slice: str, threshold: float, tpr: float, fpr: float) -> None:
        """Append one ROC point to ``slice``."""
        self._slice(slice).log_roc_data_point(fpr, tpr, threshold)

    def load_roc_readings(self, slice: str, readings: list[list[float]]) -> None:
        """Record ``[threshold, tpr, fpr]`` readings for ``slice``."""
        for threshold, tpr, fpr in readings:
            self.log_roc_reading(slice, threshold, tpr, fpr)

    def log_confusion_matrix(
        self, slice: str, categories: list[str], matrix: list[list[int]]
    ) -> None:
        """Record a confusion matrix for ``slice``."""
        self._slice(slice).log_confusion_matrix(categories, matrix)


class HTML(Artifact):
    """An HTML page, written at ``path``."""

    schema_title = "system.HTML"


class Markdown(Artifact):
    """A Markdown document, written at ``path``."""

    schema_title = "system.Markdown"


ARTIFACT_CLASSES: tuple[type[Artifact], ...] = (
    Artifact,
    Dataset,
    Model,
    Metrics,
    ClassificationMetrics,
    SlicedClassificationMetrics,
    HTML,
    Markdown,
)
ARTIFACT_CLASSES_BY_TITLE: dict[str, type[Artifact]] = {c.schema_title: c for c in ARTIFACT_CLASSES}


class _Direction:
    """The marker inside ``Annotated[...]`` that says input or output."""

    def __init__(self, direction: str) -> None:
        self.direction = direction

    def __repr__(self) -> str:
        return f"<{self.direction} artifact>"


INPUT_MARKER = _Direction("input")
OUTPUT_MARKER = _Direction("output")

T = TypeVar("T")
Input = Annotated[T, INPUT_MARKER]
"""``Input[Dataset]``: an artifact the component reads."""
Output = Annotated[T, OUTPUT_MARKER]
"""``Output[Model]``: an artifact the component writes."""


def _list_item(annotation: Any) -> Any:
    """``X`` for ``List[X]``/``list[X]``; else ``None``."""
    if typing.get_origin(annotation) is list:
        args = typing.get_args(annotation)
        if len(args) == 1:
            return args[0]
    return None


def artifact_annotation(annotation: Any) -> tuple[str, type[Artifact]] | None:
    """``("input"|"output", cls)`` for ``Input[cls]``/``Output[cls]``; else ``None``.

    A bare artifact class counts as an input, as in KFP; ``Input[List[cls]]`` gives
    ``("input", cls)`` too (see :func:`is_artifact_list`).
    """
    if typing.get_origin(annotation) is Annotated:
        base, *extras = typing.get_args(annotation)
        item = _list_item(base)
        if item is not None:
            base = item
        for extra in extras:
            if isinstance(extra, _Direction) and isinstance(base, type):
                if issubclass(base, Artifact):
                    return extra.direction, base
                raise TypeError(
                    f"{extra.direction.title()}[...] takes an artifact class, not {base!r}"
                )
        return None
    item = _list_item(annotation)
    if isinstance(item, type) and issubclass(item, Artifact):
        return "input", item
    if isinstance(annotation, type) and issubclass(annotation, Artifact):
        return "input", annotation
    return None


def is_artifact_list(annotation: Any) -> bool:
    """True for ``Input[List[Dataset]]`` (and ``List[Dataset]``): a list of artifacts."""
    if typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    item = _list_item(annotation)
    return isinstance(item, type) and issubclass(item, Artifact)


def _artifact_class_for(type_name: Any) -> type[Artifact] | None:
    if isinstance(type_name, type) and issubclass(type_name, Artifact):
        return type_name
    if isinstance(type_name, str):
        for cls in ARTIFACT_CLASSES:
            if type_name in (cls.__name__, cls.schema_title):
                return cls
    return None


class _PathAnnotation:
    """``InputPath(T)``/``OutputPath(T)``: the function gets a local file path.

    ``T`` is a parameter type (``str``, ``int``, ...) or an artifact type (a class, or
    a name such as ``"Dataset"``); names that are not artifact classes mean a plain
    ``system.Artifact``.
    """

    direction = ""

    def __init__(self, type: Any = None) -> None:
        self.type = type

    @property
    def artifact_class(self) -> type[Artifact] | None:
        """The artifact class for an artifact path, or None for a parameter path."""
        if self.type in (str, int, float, bool, list, dict):
            return None
        origin = typing.get_origin(self.type)
        if origin in (list, dict):
            return None
        return _artifact_class_for(self.type) or Artifact

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.type == getattr(other, "type", None)

    def __hash__(self) -> int:
        return hash((type(self).__name__, repr(self.type)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.type!r})"


class InputPath(_PathAnnotation):
    """``InputPath("Dataset")``: the local path of an input artifact."""

    direction = "input"


class OutputPath(_PathAnnotation):
    """``OutputPath(int)``/``OutputPath("Model")``: where to write an output."""

    direction = "output"


class PipelineTaskFinalStatus:
    """The final status of an exit handler's tasks, given to its exit task.

    Declare a parameter ``status: PipelineTaskFinalStatus`` in an exit task; the
    engine fills it in, so the pipeline does not pass it.
    """

    def __init__(
        self,
        state: str = "",
        pipeline_job_resource_name: str = "",
        pipeline_task_name: str = "",
        error_code: int | None = None,
        error_message: str | None = None,
    ) -> None:
        self.state = state
        self.pipeline_job_resource_name = pipeline_job_resource_name
        self.pipeline_task_name = pipeline_task_name
        self.error_code = error_code
        self.error_message = error_message

    @classmethod
    def from_value(cls, value: dict[str, Any]) -> PipelineTaskFinalStatus:
        """Read the struct the engine sends (camelCase or snake_case keys)."""
        error = value.get("error") or {}
        return cls(
            state=value.get("state", ""),
            pipeline_job_resource_name=value.get(
                "pipelineJobResourceName", value.get("pipeline_job_resource_name", "")
            ),
            pipeline_task_name=value.get("pipelineTaskName", value.get("pipeline_task_name", "")),
            error_code=error.get("code"),
            error_message=error.get("message"),
        )

    def __repr__(self) -> str:
        return f"PipelineTaskFinalStatus(state={self.state!r}, task={self.pipeline_task_name!r})"
