"""The Python client for a Stepwell API service."""

from stepwell.client.client import Client, pipeline_spec_from_file, pipeline_spec_from_func
from stepwell.client.types import (
    FINAL_STATES,
    ArtifactRef,
    Experiment,
    Outputs,
    Page,
    Pipeline,
    PipelineVersion,
    RecurringRun,
    Run,
    RunPage,
    TaskDetail,
)

__all__ = [
    "FINAL_STATES",
    "ArtifactRef",
    "Client",
    "Experiment",
    "Outputs",
    "Page",
    "Pipeline",
    "PipelineVersion",
    "RecurringRun",
    "Run",
    "RunPage",
    "TaskDetail",
    "pipeline_spec_from_file",
    "pipeline_spec_from_func",
]
