"""Components loaded from KFP v2 component YAML (a compiled PipelineSpec).

A file with one executor becomes a leaf component that runs that executor as written;
a compiled pipeline with several components becomes a nested-pipeline component whose
DAG is merged into the pipeline that uses it, as KFP does.
"""

from __future__ import annotations

import copy
from typing import Any

from stepwell.dsl.base_component import BaseComponent
from stepwell.dsl.interface import NO_DEFAULT, ComponentInterface, IOSpec
from stepwell.runtime._executor_types import ARTIFACT_CLASSES_BY_TITLE, Artifact

_custom_classes: dict[tuple[str, str], type[Artifact]] = {}


def artifact_class_for(artifact_type: dict[str, Any]) -> type[Artifact]:
    """The artifact class of an IR ``artifactType`` (custom titles get a class of their own)."""
    title = artifact_type.get("schemaTitle") or "system.Artifact"
    version = artifact_type.get("schemaVersion") or "0.0.1"
    known = ARTIFACT_CLASSES_BY_TITLE.get(title)
    if known is not None and known.schema_version == version:
        return known
    key = (title, version)
    if key not in _custom_classes:
        name = title.rsplit(".", 1)[-1] or "Artifact"
        _custom_classes[key] = type(
            name, (Artifact,), {"schema_title": title, "schema_version": version}
        )
    return _custom_classes[key]


def _specs(definitions: dict[str, Any] | None, is_input: bool) -> dict[str, IOSpec]:
    specs: dict[str, IOSpec] = {}
    definitions = definitions or {}
    for name, body in (definitions.get("parameters") or {}).items():
        spec = IOSpec(name=name, parameter_type=body["parameterType"])
        spec.description = body.get("description")
        if is_input:
            if "defaultValue" in body:
                spec.default = body["defaultValue"]
            spec.optional = bool(body.get("isOptional")) or spec.default is not NO_DEFAULT
        specs[name] = spec
    for name, body in (definitions.get("artifacts") or {}).items():
        spec = IOSpec(name=name, artifact_class=artifact_class_for(body["artifactType"]))
        spec.description = body.get("description")
        spec.is_list = bool(body.get("isArtifactList"))
        if is_input:
            spec.optional = bool(body.get("isOptional"))
        specs[name] = spec
    return specs


class YamlComponent(BaseComponent):
    """A component read from a compiled KFP v2 YAML file."""

    def __init__(self, spec: dict[str, Any], text: str | None = None) -> None:
        for key in ("components", "deploymentSpec", "root", "pipelineInfo"):
            if key not in spec:
                raise ValueError(
                    f"not a KFP v2 component: the YAML has no {key!r} (v1 component YAML with "
                    "'implementation:' is not supported; recompile it with kfp 2.x)"
                )
        self.spec = spec
        self.text = text
        info = spec["pipelineInfo"]
        self.name = info["name"]
        self.description = info.get("description")
        root = spec["root"]
        self.interface = ComponentInterface(
            name=self.name,
            description=self.description,
            inputs=_specs(root.get("inputDefinitions"), True),
            outputs=_specs(root.get("outputDefinitions"), False),
        )
        executors = spec["deploymentSpec"].get("executors") or {}
        components = spec["components"]
        self._container: dict[str, Any] | None = None
        self.pipeline_spec: dict[str, Any] | None = None
        if len(components) == 1 and len(executors) == 1:
            (component,) = components.values()
            (executor,) = executors.values()
            if "container" in executor and "executorLabel" in component:
                self._container = executor["container"]
        if self._container is None:
            self.pipeline_spec = {
                "components": spec["components"],
                "executors": executors,
                "root": root,
            }

    def container_spec(self) -> dict[str, Any] | None:
        """The executor's ``container`` spec as written in the YAML (a fresh copy)."""
        return copy.deepcopy(self._container)

    @property
    def component_spec(self) -> dict[str, Any]:
        """The loaded PipelineSpec, as a dict."""
        return self.spec
