"""The pipeline IR (KFP PipelineSpec 2.1.0): loading, checking and parameter handling."""

from stepwell.ir.caching import with_caching
from stepwell.ir.params import coerce_parameter, integral, parse_cli_value, resolve_parameters
from stepwell.ir.spec import (
    SCHEMA_VERSION,
    PipelineSpecDoc,
    check_pipeline_spec,
    load_pipeline_spec,
)

__all__ = [
    "SCHEMA_VERSION",
    "PipelineSpecDoc",
    "check_pipeline_spec",
    "coerce_parameter",
    "integral",
    "load_pipeline_spec",
    "parse_cli_value",
    "resolve_parameters",
    "with_caching",
]
