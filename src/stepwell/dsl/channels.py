"""Pipeline channels: placeholders for values that exist only when the pipeline runs.

A channel is a pipeline input (``task_name is None``), an output of a task, a loop
item (``dsl.ParallelFor``), a fan-in of loop results (``dsl.Collected``) or the output
of whichever branch ran (``dsl.OneOf``). Passing a channel to a component creates a
data dependency. A channel formats as a ``{{channel:...}}`` pattern, so f-strings that
mix channels and text can be turned into run-time placeholders by the compiler, and
comparing a channel (``task.output > 3``) builds a condition for ``dsl.If``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stepwell.runtime._executor_types import Artifact

if TYPE_CHECKING:
    from stepwell.dsl.control_flow import TasksGroup

CHANNEL_PATTERN = re.compile(r"\{\{channel:task=([^;]*);name=([^;]*);type=([^;]*);\}\}")
"""How a channel formats inside a string (an f-string argument)."""


@dataclass
class ConditionOperation:
    """``left <operator> right`` (negated with ``!(...)`` when ``negate``)."""

    operator: str
    left: Any
    right: Any
    negate: bool = False

    def negated(self) -> ConditionOperation:
        """The same comparison, negated."""
        return ConditionOperation(self.operator, self.left, self.right, negate=True)

    def channels(self) -> list[PipelineChannel]:
        """The channels among the two operands."""
        return [o for o in (self.left, self.right) if isinstance(o, PipelineChannel)]

    def __bool__(self) -> bool:
        raise TypeError(
            "a comparison of pipeline channels is only known when the pipeline runs; use it "
            "in `with dsl.If(...):`, not in a Python `if`"
        )


class PipelineChannel:
    """A value produced at run time: a pipeline input or a task output."""

    task: Any = None
    """The producing ``PipelineTask`` (task outputs only)."""
    collected_from: PipelineChannel | None = None
    """For ``dsl.Collected``: the per-iteration output it gathers."""
    oneof_of: list[PipelineChannel] | None = None
    """For ``dsl.OneOf``: the branch outputs it picks from."""
    oneof_group: Any = None
    """For ``dsl.OneOf``: the ``condition-branches`` group it belongs to."""

    def __init__(self, name: str, task_name: str | None = None) -> None:
        self.name = name
        self.task_name = task_name

    @property
    def full_name(self) -> str:
        """``<task>-<name>`` for a task output, ``<name>`` for a pipeline input."""
        return f"{self.task_name}-{self.name}" if self.task_name else self.name

    @property
    def is_artifact(self) -> bool:
        """True for an artifact channel."""
        return False

    @property
    def type_name(self) -> str:
        """The channel's type as shown to people."""
        raise NotImplementedError

    @property
    def pattern(self) -> str:
        """How this channel appears inside an f-string."""
        return (
            f"{{{{channel:task={self.task_name or ''};name={self.name};type={self.type_name};}}}}"
        )

    def _describe(self) -> str:
        if self.task_name is None:
            return f"pipeline input {self.name!r}"
        return f"output {self.name!r} of task {self.task_name!r}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._describe()}, type={self.type_name})"

    def __str__(self) -> str:
        return self.pattern

    def __format__(self, spec: str) -> str:
        return self.pattern

    def __hash__(self) -> int:
        return hash(self.pattern)

    def __bool__(self) -> bool:
        raise TypeError(
            f"{self._describe()} is only known when the pipeline runs; it has no truth value "
            "at compile time (use `with dsl.If(...)` to branch on it)"
        )

    def _compare(self, operator: str, other: Any) -> ConditionOperation:
        return ConditionOperation(operator, self, other)

    def __eq__(self, other: Any) -> ConditionOperation:  # type: ignore[override]
        return self._compare("==", other)

    def __ne__(self, other: Any) -> ConditionOperation:  # type: ignore[override]
        return self._compare("!=", other)

    def __lt__(self, other: Any) -> ConditionOperation:
        return self._compare("<", other)

    def __le__(self, other: Any) -> ConditionOperation:
        return self._compare("<=", other)

    def __gt__(self, other: Any) -> ConditionOperation:
        return self._compare(">", other)

    def __ge__(self, other: Any) -> ConditionOperation:
        return self._compare(">=", other)


class PipelineParameterChannel(PipelineChannel):
    """A parameter channel with an IR parameter type (``NUMBER_INTEGER``, ``STRING``, ...)."""

    def __init__(
        self,
        name: str,
        parameter_type: str,
        task_name: str | None = None,
        item_type: str | None = None,
    ) -> None:
        super().__init__(name, task_name)
        self.parameter_type = parameter_type
        self.item_type = item_type

    @property
    def type_name(self) -> str:
        """The IR parameter type."""
        return self.parameter_type


class PipelineArtifactChannel(PipelineChannel):
    """An artifact channel of a given artifact class (a list of them if ``is_list``)."""

    def __init__(
        self,
        name: str,
        artifact_class: type[Artifact],
        task_name: str | None = None,
        is_list: bool = False,
    ) -> None:
        super().__init__(name, task_name)
        self.artifact_class = artifact_class
        self.is_list = is_list

    @property
    def is_artifact(self) -> bool:
        """True: this is an artifact channel."""
        return True

    @property
    def type_name(self) -> str:
        """The artifact's schema title."""
        return self.artifact_class.schema_title


_PYTHON_TO_PARAMETER = {
    bool: "BOOLEAN",
    int: "NUMBER_INTEGER",
    float: "NUMBER_DOUBLE",
    str: "STRING",
    dict: "STRUCT",
    list: "LIST",
}


def constant_parameter_type(value: Any) -> str:
    """The IR parameter type of a Python constant."""
    for cls, name in _PYTHON_TO_PARAMETER.items():
        if type(value) is cls:
            return name
    raise TypeError(f"{value!r} cannot be used as a loop item")


class LoopArgument(PipelineParameterChannel):
    """The item of a ``dsl.ParallelFor``; ``item.key`` reads a field of a dict item.

    Over a raw list the name is ``loop-item-param-<N>`` and the type is that of the first
    item; over a list channel the name is ``<channel>-loop-item`` and, as in KFP, the
    type is ``STRING`` unless the list's item type is known.
    """

    def __init__(
        self,
        name: str,
        parameter_type: str,
        task_name: str | None,
        raw_items: list[Any] | None = None,
        items_channel: PipelineChannel | None = None,
        subvar_type: str | None = None,
    ) -> None:
        super().__init__(name, parameter_type, task_name)
        self.raw_items = raw_items
        self.items_channel = items_channel
        self.subvar_type = subvar_type
        self.group: TasksGroup | None = None  # set by the ParallelFor that owns it

    @classmethod
    def from_raw(cls, items: list[Any], code: str) -> LoopArgument:
        """A loop over a list written in the pipeline source."""
        if not isinstance(items, list | tuple) or not items:
            raise ValueError("dsl.ParallelFor needs a non-empty list of items or a list channel")
        first = items[0]
        subvar_type = None
        if isinstance(first, dict) and first:
            subvar_type = constant_parameter_type(next(iter(first.values())))
        return cls(
            f"loop-item-param-{code}",
            constant_parameter_type(first),
            None,
            raw_items=list(items),
            subvar_type=subvar_type,
        )

    @classmethod
    def from_channel(cls, channel: PipelineChannel) -> LoopArgument:
        """A loop over a list parameter (a pipeline input or a task output)."""
        if not isinstance(channel, PipelineParameterChannel):
            raise TypeError(
                "dsl.ParallelFor over artifacts is not supported; loop over a list parameter"
            )
        if channel.parameter_type != "LIST":
            raise TypeError(
                f"dsl.ParallelFor needs a list, but {channel!r} is {channel.parameter_type}"
            )
        return cls(
            f"{channel.name}-loop-item",
            channel.item_type or "STRING",
            channel.task_name,
            items_channel=channel,
        )

    @property
    def raw_json(self) -> str:
        """The raw items as the IR writes them."""
        return json.dumps(self.raw_items, sort_keys=True)

    def __getattr__(self, key: str) -> LoopArgumentVariable:
        if key.startswith("_") or key in _RESERVED:
            raise AttributeError(key)
        return LoopArgumentVariable(self, key)


_RESERVED = frozenset({"oneof_of", "oneof_group", "collected_from", "task", "loop_argument"})
"""Attributes looked up on channels that must never become ``item.<key>`` fields."""


class LoopArgumentVariable(PipelineParameterChannel):
    """``item.key``: one field of a dict loop item."""

    def __init__(self, loop_argument: LoopArgument, key: str) -> None:
        if not re.fullmatch(r"[A-Za-z_][0-9A-Za-z_]*", key):
            raise ValueError(f"{key!r} cannot be read from a loop item; use a field name")
        super().__init__(
            f"{loop_argument.name}-subvar-{key}",
            loop_argument.subvar_type or "STRING",
            loop_argument.task_name,
        )
        self.loop_argument = loop_argument
        self.key = key

    @property
    def selector(self) -> str:
        """The CEL expression that reads the field from the item."""
        return f'parseJson(string_value)["{self.key}"]'


class Collected:
    """``dsl.Collected(task.output)``: the output of every iteration of the enclosing
    ``dsl.ParallelFor`` loops, as a list (parameters) or a list of artifacts."""

    def __new__(cls, output: PipelineChannel) -> Any:
        if not isinstance(output, PipelineChannel) or output.task_name is None:
            raise TypeError("dsl.Collected takes a task output from inside a dsl.ParallelFor")
        channel: PipelineChannel
        if isinstance(output, PipelineArtifactChannel):
            channel = PipelineArtifactChannel(
                output.name, output.artifact_class, output.task_name, is_list=True
            )
        else:
            channel = PipelineParameterChannel(output.name, "LIST", output.task_name)
        channel.collected_from = output
        return channel


def collected_source(channel: PipelineChannel) -> PipelineChannel | None:
    """The per-iteration output a ``dsl.Collected`` channel gathers, or None."""
    return channel.__dict__.get("collected_from")


def oneof_sources(channel: PipelineChannel) -> list[PipelineChannel] | None:
    """The branch outputs a ``dsl.OneOf`` channel chooses between, or None."""
    return channel.__dict__.get("oneof_of")
