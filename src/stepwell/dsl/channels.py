"""Pipeline channels: placeholders for values that exist only when the pipeline runs.

A channel is either a pipeline input (``task_name is None``) or an output of a task in
the pipeline. Passing a channel to a component creates a data dependency.
"""

from __future__ import annotations

from stepwell.runtime._executor_types import Artifact


class PipelineChannel:
    """A value produced at run time: a pipeline input or a task output."""

    def __init__(self, name: str, task_name: str | None = None) -> None:
        self.name = name
        self.task_name = task_name

    @property
    def is_artifact(self) -> bool:
        """True for an artifact channel."""
        return False

    @property
    def type_name(self) -> str:
        """The channel's type as shown to people."""
        raise NotImplementedError

    def _describe(self) -> str:
        if self.task_name is None:
            return f"pipeline input {self.name!r}"
        return f"output {self.name!r} of task {self.task_name!r}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._describe()}, type={self.type_name})"

    def __str__(self) -> str:
        raise TypeError(
            f"{self._describe()} is only known when the pipeline runs; it cannot be formatted "
            "into a string at compile time (f-strings with task outputs are not supported yet)"
        )

    def __bool__(self) -> bool:
        raise TypeError(
            f"{self._describe()} is only known when the pipeline runs; it has no truth value "
            "at compile time"
        )


class PipelineParameterChannel(PipelineChannel):
    """A parameter channel with an IR parameter type (``NUMBER_INTEGER``, ``STRING``, ...)."""

    def __init__(self, name: str, parameter_type: str, task_name: str | None = None) -> None:
        super().__init__(name, task_name)
        self.parameter_type = parameter_type

    @property
    def type_name(self) -> str:
        """The IR parameter type."""
        return self.parameter_type


class PipelineArtifactChannel(PipelineChannel):
    """An artifact channel of a given artifact class."""

    def __init__(
        self, name: str, artifact_class: type[Artifact], task_name: str | None = None
    ) -> None:
        super().__init__(name, task_name)
        self.artifact_class = artifact_class

    @property
    def is_artifact(self) -> bool:
        """True: this is an artifact channel."""
        return True

    @property
    def type_name(self) -> str:
        """The artifact's schema title."""
        return self.artifact_class.schema_title
