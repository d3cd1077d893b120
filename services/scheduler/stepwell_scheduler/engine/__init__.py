"""The scheduling engine: DAG planning, input resolution, dispatch and settlement."""

from stepwell_scheduler.engine.driver import Engine
from stepwell_scheduler.engine.plan import PipelinePlan, PlannedTask
from stepwell_scheduler.engine.resolve import (
    InputResolutionError,
    coerce_to_type,
    resolve_dag_outputs,
    resolve_inputs,
)

__all__ = [
    "Engine",
    "InputResolutionError",
    "PipelinePlan",
    "PlannedTask",
    "coerce_to_type",
    "resolve_dag_outputs",
    "resolve_inputs",
]
