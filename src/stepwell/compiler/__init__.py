"""Compile pipelines to KFP's PipelineSpec IR: ``from stepwell import compiler``.

``compiler.Compiler().compile(pipeline, "pipeline.yaml")`` writes YAML like
``kfp.compiler`` does; ``compiler.compile_to_dict(pipeline)`` returns the IR as a dict.
"""

from stepwell.compiler.pipeline_spec import compile_to_dict
from stepwell.compiler.writer import Compiler, header_comment, to_yaml

__all__ = ["Compiler", "compile_to_dict", "header_comment", "to_yaml"]
