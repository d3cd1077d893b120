"""The pipeline DSL: ``from stepwell import dsl`` mirrors ``from kfp import dsl``.

The artifact classes, ``Input``/``Output``, ``InputPath``/``OutputPath`` and
``PipelineTaskFinalStatus`` are the very objects defined in ``stepwell.runtime`` (the
names a component's code sees inside its task), so
``stepwell.dsl.Dataset is stepwell.runtime.executor.Dataset``.
"""

from stepwell.dsl.base_component import BaseComponent
from stepwell.dsl.channels import (
    Collected,
    PipelineArtifactChannel,
    PipelineChannel,
    PipelineParameterChannel,
)
from stepwell.dsl.components import PythonComponent, component, is_component
from stepwell.dsl.container_component import ContainerComponent, ContainerSpec, container_component
from stepwell.dsl.control_flow import Condition, Elif, Else, ExitHandler, If, OneOf, ParallelFor
from stepwell.dsl.importer_node import importer
from stepwell.dsl.pipelines import Pipeline, is_pipeline, pipeline
from stepwell.dsl.placeholders import ConcatPlaceholder, IfPresentPlaceholder
from stepwell.dsl.tasks import PipelineTask
from stepwell.runtime._executor_types import (
    HTML,
    Artifact,
    ClassificationMetrics,
    Dataset,
    Input,
    InputPath,
    Markdown,
    Metrics,
    Model,
    Output,
    OutputPath,
    PipelineTaskFinalStatus,
    SlicedClassificationMetrics,
)

PIPELINE_JOB_NAME_PLACEHOLDER = "{{$.pipeline_job_name}}"
"""The run's display name, when the task runs."""
PIPELINE_JOB_RESOURCE_NAME_PLACEHOLDER = "{{$.pipeline_job_resource_name}}"
"""The run's resource name in the engine."""
PIPELINE_JOB_ID_PLACEHOLDER = "{{$.pipeline_job_uuid}}"
"""The run's id."""
PIPELINE_TASK_NAME_PLACEHOLDER = "{{$.pipeline_task_name}}"
"""The task's name."""
PIPELINE_TASK_ID_PLACEHOLDER = "{{$.pipeline_task_uuid}}"
"""The task's id."""
PIPELINE_TASK_EXECUTOR_OUTPUT_PATH_PLACEHOLDER = "{{$.outputs.output_file}}"
"""Where the task writes its ExecutorOutput JSON."""
PIPELINE_TASK_EXECUTOR_INPUT_PLACEHOLDER = "{{$}}"
"""The task's whole ExecutorInput JSON."""
PIPELINE_ROOT_PLACEHOLDER = "{{$.pipeline_root}}"
"""The run's artifact root."""
PIPELINE_JOB_CREATE_TIME_UTC_PLACEHOLDER = "{{$.pipeline_job_create_time_utc}}"
"""When the run was created (UTC)."""
PIPELINE_JOB_SCHEDULE_TIME_UTC_PLACEHOLDER = "{{$.pipeline_job_schedule_time_utc}}"
"""When the run was scheduled (UTC; recurring runs)."""
WORKSPACE_PATH_PLACEHOLDER = "{{$.workspace_path}}"
"""The shared workspace folder."""

__all__ = [
    "HTML",
    "PIPELINE_JOB_CREATE_TIME_UTC_PLACEHOLDER",
    "PIPELINE_JOB_ID_PLACEHOLDER",
    "PIPELINE_JOB_NAME_PLACEHOLDER",
    "PIPELINE_JOB_RESOURCE_NAME_PLACEHOLDER",
    "PIPELINE_JOB_SCHEDULE_TIME_UTC_PLACEHOLDER",
    "PIPELINE_ROOT_PLACEHOLDER",
    "PIPELINE_TASK_EXECUTOR_INPUT_PLACEHOLDER",
    "PIPELINE_TASK_EXECUTOR_OUTPUT_PATH_PLACEHOLDER",
    "PIPELINE_TASK_ID_PLACEHOLDER",
    "PIPELINE_TASK_NAME_PLACEHOLDER",
    "WORKSPACE_PATH_PLACEHOLDER",
    "Artifact",
    "BaseComponent",
    "ClassificationMetrics",
    "Collected",
    "ConcatPlaceholder",
    "Condition",
    "ContainerComponent",
    "ContainerSpec",
    "Dataset",
    "Elif",
    "Else",
    "ExitHandler",
    "If",
    "IfPresentPlaceholder",
    "Input",
    "InputPath",
    "Markdown",
    "Metrics",
    "Model",
    "OneOf",
    "Output",
    "OutputPath",
    "ParallelFor",
    "Pipeline",
    "PipelineArtifactChannel",
    "PipelineChannel",
    "PipelineParameterChannel",
    "PipelineTask",
    "PipelineTaskFinalStatus",
    "PythonComponent",
    "SlicedClassificationMetrics",
    "component",
    "container_component",
    "importer",
    "is_component",
    "is_pipeline",
    "pipeline",
]
