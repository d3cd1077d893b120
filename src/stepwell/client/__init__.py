"""The Python client for a Stepwell API service."""

from stepwell.client.client import Client, pipeline_spec_from_file, pipeline_spec_from_func
from stepwell.client.types import FINAL_STATES, ArtifactRef, Outputs, Run, RunPage, TaskDetail

__all__ = [
    "FINAL_STATES",
    "ArtifactRef",
    "Client",
    "Outputs",
    "Run",
    "RunPage",
    "TaskDetail",
    "pipeline_spec_from_file",
    "pipeline_spec_from_func",
]
