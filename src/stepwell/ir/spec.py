"""Reading and checking a PipelineSpec (KFP IR, schema 2.1.0).

A spec arrives as YAML or JSON text (possibly two documents: the pipeline spec and a
kfp-kubernetes platform spec) or as an already parsed dict. :func:`load_pipeline_spec`
returns it as a plain dict in the IR's camelCase JSON form after checking it with the
``kfp-pipeline-spec`` protobuf schema and a few reference checks, so a bad spec is
refused before anything is recorded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from stepwell.errors import InvalidArgument

SCHEMA_VERSION = "2.1.0"


@dataclass
class PipelineSpecDoc:
    """A checked pipeline spec and its optional platform spec, both as JSON dicts."""

    spec: dict[str, Any]
    platform_spec: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.spec["pipelineInfo"]["name"])

    @property
    def root_parameters(self) -> dict[str, Any]:
        """The root DAG's declared input parameters: ``{name: ParameterSpec dict}``."""
        return dict(self.spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {}))


def _parse_text(text: str) -> list[Any]:
    text = text.strip()
    if not text:
        raise InvalidArgument("pipeline spec is empty")
    if text.startswith("{"):
        try:
            return [json.loads(text)]
        except json.JSONDecodeError as err:
            raise InvalidArgument(f"pipeline spec is not valid JSON: {err}") from None
    import yaml

    try:
        return [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as err:
        raise InvalidArgument(f"pipeline spec is not valid YAML: {err}") from None


def load_pipeline_spec(source: str | bytes | dict[str, Any]) -> PipelineSpecDoc:
    """Parses and checks a pipeline spec.

    Accepts YAML/JSON text, a bare IR dict, or ``{"pipeline_spec": ..., "platform_spec": ...}``.
    Raises :class:`InvalidArgument` naming what is wrong.
    """
    if isinstance(source, bytes):
        try:
            source = source.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidArgument("pipeline spec is not UTF-8 text") from None
    docs: list[Any] = _parse_text(source) if isinstance(source, str) else [source]
    spec: dict[str, Any] | None = None
    platform: dict[str, Any] = {}
    for doc in docs:
        if not isinstance(doc, dict):
            raise InvalidArgument("pipeline spec must be a mapping (a PipelineSpec), not a " + type(doc).__name__)
        if "pipeline_spec" in doc and isinstance(doc["pipeline_spec"], dict):
            doc, platform_part = doc["pipeline_spec"], doc.get("platform_spec") or {}
            if platform_part:
                platform = platform_part
        if "platforms" in doc and "root" not in doc:
            if platform:
                raise InvalidArgument("pipeline spec holds more than one platform spec")
            platform = doc
            continue
        if spec is not None:
            raise InvalidArgument("pipeline spec holds more than one pipeline spec document")
        spec = doc
    if spec is None:
        raise InvalidArgument("no pipeline spec found: expected a document with pipelineInfo and root")
    check_pipeline_spec(spec)
    return PipelineSpecDoc(spec=spec, platform_spec=platform)


def check_pipeline_spec(spec: dict[str, Any]) -> None:
    """Checks ``spec`` against the IR schema and its internal references."""
    version = spec.get("schemaVersion")
    if version != SCHEMA_VERSION:
        raise InvalidArgument(
            f"pipeline spec has schemaVersion {version!r}; Stepwell runs schema {SCHEMA_VERSION!r} "
            "(compile with kfp 2.x or stepwell)"
        )
    info = spec.get("pipelineInfo")
    if not isinstance(info, dict) or not info.get("name"):
        raise InvalidArgument("pipeline spec has no pipelineInfo.name")
    if not isinstance(spec.get("root"), dict) or "dag" not in spec["root"]:
        raise InvalidArgument("pipeline spec has no root DAG (root.dag)")

    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    try:
        json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec())
    except json_format.ParseError as err:
        raise InvalidArgument(f"pipeline spec does not match the PipelineSpec schema: {err}") from None

    components = spec.get("components", {}) or {}
    executors = (spec.get("deploymentSpec", {}) or {}).get("executors", {}) or {}
    for comp_name, comp in components.items():
        label = comp.get("executorLabel")
        if label and label not in executors:
            raise InvalidArgument(
                f"component {comp_name!r} names executor {label!r}, which deploymentSpec.executors lacks"
            )
    _check_dag("root", spec["root"], components, set())


def _check_dag(where: str, component: dict[str, Any], components: dict[str, Any], seen: set[str]) -> None:
    if where in seen:
        return
    seen.add(where)
    tasks = component.get("dag", {}).get("tasks", {}) or {}
    for task_name, task in tasks.items():
        ref = task.get("componentRef", {}).get("name")
        if not ref or ref not in components:
            raise InvalidArgument(f"task {task_name!r} in {where} refers to unknown component {ref!r}")
        for dep in task.get("dependentTasks", []) or []:
            if dep not in tasks:
                raise InvalidArgument(f"task {task_name!r} in {where} depends on unknown task {dep!r}")
        for kind in ("parameters", "artifacts"):
            for input_name, binding in (task.get("inputs", {}).get(kind, {}) or {}).items():
                for key in ("taskOutputParameter", "taskOutputArtifact"):
                    producer = (binding.get(key) or {}).get("producerTask")
                    if producer is not None and producer not in tasks:
                        raise InvalidArgument(
                            f"input {input_name!r} of task {task_name!r} in {where} reads from unknown task {producer!r}"
                        )
        if "dag" in components[ref]:
            _check_dag(ref, components[ref], components, seen)
