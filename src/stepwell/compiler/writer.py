"""Write a compiled pipeline to a file: KFP's comment header, then the IR as YAML.

The YAML is dumped with sorted keys, as KFP does, so the same pipeline always
compiles to the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from stepwell.compiler.pipeline_spec import compile_to_dict
from stepwell.dsl.components import PythonComponent
from stepwell.dsl.interface import PYTHON_TYPE_NAMES
from stepwell.dsl.pipelines import Pipeline

_DESCRIPTION_INDENT = "#              "


def _signature_lines(heading: str, definitions: Mapping[str, Any] | None) -> list[str]:
    if not definitions:
        return []
    rows: list[tuple[str, str]] = []
    for name, body in definitions.get("parameters", {}).items():
        text = f"{name}: {PYTHON_TYPE_NAMES.get(body['parameterType'], body['parameterType'])}"
        if "defaultValue" in body:
            default = body["defaultValue"]
            shown = f"'{default}'" if isinstance(default, str) else str(default)
            text += f" [Default: {shown}]"
        rows.append((name, text))
    for name, body in definitions.get("artifacts", {}).items():
        rows.append((name, f"{name}: {body['artifactType']['schemaTitle']}"))
    return [heading] + [f"#    {text}" for _, text in sorted(rows)]


def header_comment(spec: Mapping[str, Any], description: str | None) -> str:
    """The ``# PIPELINE DEFINITION`` comment block that starts a compiled file."""
    lines = ["# PIPELINE DEFINITION", f"# Name: {spec['pipelineInfo']['name']}"]
    if description:
        lines.append("# Description: " + f"\n{_DESCRIPTION_INDENT}".join(description.splitlines()))
    root = spec["root"]
    lines += _signature_lines("# Inputs:", root.get("inputDefinitions"))
    lines += _signature_lines("# Outputs:", root.get("outputDefinitions"))
    return "\n".join(lines) + "\n"


def to_yaml(spec: Mapping[str, Any], description: str | None = None) -> str:
    """The compiled file's text: header comment plus the IR as YAML."""
    import yaml

    return header_comment(spec, description) + yaml.safe_dump(dict(spec), sort_keys=True)


def _description(obj: Any) -> str | None:
    if isinstance(obj, Pipeline | PythonComponent):
        return obj.description
    return None


class Compiler:
    """Compiles pipelines (and single components) to PipelineSpec YAML files."""

    def compile(
        self,
        pipeline_func: Any,
        package_path: str,
        pipeline_parameters: Mapping[str, Any] | None = None,
    ) -> None:
        """Compile ``pipeline_func`` and write it to ``package_path``.

        ``.yaml``/``.yml`` paths get YAML with KFP's comment header; ``.json`` paths get
        indented JSON. ``pipeline_parameters`` override input defaults.
        """
        spec = compile_to_dict(pipeline_func, pipeline_parameters)
        if package_path.endswith((".yaml", ".yml")):
            text = to_yaml(spec, _description(pipeline_func))
        elif package_path.endswith(".json"):
            text = json.dumps(spec, indent=2, sort_keys=True)
        else:
            raise ValueError(f"the output path {package_path!r} should end with .yaml or .yml")
        with open(package_path, "w", encoding="utf-8") as f:
            f.write(text)
