"""The pipeline DSL: ``from stepwell import dsl`` mirrors ``from kfp import dsl``.

The artifact classes and ``Input``/``Output`` are the very objects defined in
``stepwell.runtime`` (the names a component's code sees inside its task), so
``stepwell.dsl.Dataset is stepwell.runtime.executor.Dataset``.
"""

from stepwell.dsl.channels import PipelineArtifactChannel, PipelineChannel, PipelineParameterChannel
from stepwell.dsl.components import PythonComponent, component, is_component
from stepwell.dsl.pipelines import Pipeline, is_pipeline, pipeline
from stepwell.dsl.tasks import PipelineTask
from stepwell.runtime._executor_types import (
    HTML,
    Artifact,
    ClassificationMetrics,
    Dataset,
    Input,
    Markdown,
    Metrics,
    Model,
    Output,
    SlicedClassificationMetrics,
)

__all__ = [
    "HTML",
    "Artifact",
    "ClassificationMetrics",
    "Dataset",
    "Input",
    "Markdown",
    "Metrics",
    "Model",
    "Output",
    "Pipeline",
    "PipelineArtifactChannel",
    "PipelineChannel",
    "PipelineParameterChannel",
    "PipelineTask",
    "PythonComponent",
    "SlicedClassificationMetrics",
    "component",
    "is_component",
    "is_pipeline",
    "pipeline",
]
