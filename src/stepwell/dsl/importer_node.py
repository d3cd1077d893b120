"""``dsl.importer``: bring an existing artifact (by URI) into a pipeline as a task output."""

from __future__ import annotations

from typing import Any

from stepwell.dsl.base_component import BaseComponent
from stepwell.dsl.channels import PipelineChannel
from stepwell.dsl.interface import ComponentInterface, IOSpec
from stepwell.dsl.tasks import PipelineTask
from stepwell.runtime._executor_types import Artifact

OUTPUT_KEY = "artifact"


class ImporterComponent(BaseComponent):
    """The component behind one ``dsl.importer`` call."""

    def __init__(
        self,
        artifact_class: type[Artifact],
        uri: Any,
        reimport: bool,
        metadata: dict[str, Any] | None,
    ) -> None:
        self.name = "importer"
        self.artifact_class = artifact_class
        self.uri = uri
        self.reimport = reimport
        self.metadata = metadata
        self.interface = ComponentInterface(
            name="importer",
            inputs={"uri": IOSpec(name="uri", parameter_type="STRING")},
            outputs={OUTPUT_KEY: IOSpec(name=OUTPUT_KEY, artifact_class=artifact_class)},
        )

    def importer_spec(self, to_value: Any) -> dict[str, Any]:
        """The IR ``importer`` executor spec; ``to_value`` converts metadata to IR values."""
        spec: dict[str, Any] = {
            "artifactUri": (
                {"runtimeParameter": "uri"}
                if isinstance(self.uri, PipelineChannel)
                else {"constant": self.uri}
            ),
            "typeSchema": {
                "schemaTitle": self.artifact_class.schema_title,
                "schemaVersion": self.artifact_class.schema_version,
            },
        }
        if self.metadata:
            spec["metadata"] = to_value(self.metadata)
        if self.reimport:
            spec["reimport"] = True
        return spec


def importer(
    artifact_uri: str | PipelineChannel,
    artifact_class: type[Artifact],
    reimport: bool = False,
    metadata: dict[str, Any] | None = None,
) -> PipelineTask:
    """A task whose output ``artifact`` is the existing artifact at ``artifact_uri``.

    ``artifact_uri`` is a string or a string channel (a pipeline input or a task output);
    ``reimport=True`` registers the artifact again even if it is known already.
    """
    if not (isinstance(artifact_class, type) and issubclass(artifact_class, Artifact)):
        raise TypeError(
            f"dsl.importer: artifact_class must be an artifact class, not {artifact_class!r}"
        )
    if not isinstance(artifact_uri, str | PipelineChannel):
        raise TypeError(f"dsl.importer: artifact_uri must be a string, not {artifact_uri!r}")
    component = ImporterComponent(artifact_class, artifact_uri, reimport, metadata)
    return component(uri=artifact_uri)
