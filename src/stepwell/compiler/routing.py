"""Where each value flows between sub-DAGs, and which sibling waits for which.

A channel used inside nested groups (``dsl.If``, ``dsl.ParallelFor``, ...) is passed
into every group between its origin and its user as an input named
``pipelinechannel--<channel>``; a ``dsl.Collected`` or ``dsl.OneOf`` value is passed
*out* of the groups around its producer. A dependency between two tasks becomes a
dependency between their outermost groups that are siblings. This module computes
both, in the shape KFP's compiler produces.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from stepwell.dsl.channels import (
    CHANNEL_PATTERN,
    ConditionOperation,
    LoopArgument,
    LoopArgumentVariable,
    PipelineChannel,
    collected_source,
    oneof_sources,
)
from stepwell.dsl.control_flow import TasksGroup
from stepwell.dsl.pipelines import Pipeline
from stepwell.dsl.tasks import PipelineTask

Node = Any  # PipelineTask | TasksGroup

PREFIX = "pipelinechannel--"


class InvalidTopologyError(ValueError):
    """A value or dependency crosses a control-flow boundary it cannot cross."""


def ancestors(node: Node) -> list[TasksGroup]:
    """The groups around ``node``, outermost (the root) first, not counting ``node``."""
    group = node.group if isinstance(node, PipelineTask) else node.parent
    chain: list[TasksGroup] = []
    while group is not None:
        chain.append(group)
        group = group.parent
    return chain[::-1]


def key_of(node: Node, channel: PipelineChannel) -> str:
    """The output key under which ``node`` (a task or a group) offers ``channel``."""
    return channel.name if isinstance(node, PipelineTask) else PREFIX + channel.full_name


def flowing(channel: PipelineChannel) -> PipelineChannel:
    """The channel that actually travels: a loop item's field travels as the whole item."""
    return channel.loop_argument if isinstance(channel, LoopArgumentVariable) else channel


@dataclass
class GroupOutput:
    """A value a group offers to its parent: ``channel`` taken from ``child`` at ``key``."""

    channel: PipelineChannel
    child: Node
    key: str


@dataclass
class Routing:
    """The result: inputs and outputs of every group, dependencies, and used OneOfs."""

    inputs: dict[int, dict[str, PipelineChannel]] = field(default_factory=dict)
    outputs: dict[int, dict[str, GroupOutput]] = field(default_factory=dict)
    oneofs: dict[int, dict[str, PipelineChannel]] = field(default_factory=dict)
    dependencies: dict[int, set[str]] = field(default_factory=dict)


class Router:
    """Computes :class:`Routing` for one traced pipeline."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.graph = pipeline.graph
        self.routing = Routing()

    def origin(self, channel: PipelineChannel) -> list[Node]:
        """The chain of groups down to (and including) the node that produces ``channel``."""
        channel = flowing(channel)
        if isinstance(channel, LoopArgument):
            assert channel.group is not None
            return [*ancestors(channel.group), channel.group]
        group = getattr(channel, "oneof_group", None)
        if group is not None:
            return [*ancestors(group), group]
        if channel.task_name is None:
            return [self.graph.root]
        task = self.graph.tasks.get(channel.task_name)
        if task is None:
            raise InvalidTopologyError(f"{channel!r} does not belong to this pipeline")
        return [*ancestors(task), task]

    def source_in(self, dag: TasksGroup, channel: PipelineChannel) -> tuple[str, Any]:
        """How a task in ``dag`` reads ``channel``: ``("task", (producer, key))`` or
        ``("input", name)``."""
        channel = flowing(channel)
        chain = self.origin(channel)
        for j, node in enumerate(chain[:-1]):
            if node is dag:
                producer = chain[j + 1]
                return "task", (producer.name, key_of(producer, channel))
        if dag is self.graph.root and channel.task_name is None and len(chain) == 1:
            return "input", channel.name
        return "input", PREFIX + channel.full_name

    # -- recording --------------------------------------------------------------------

    def _add_dependency(self, downstream: Node, upstream: Node) -> None:
        self.routing.dependencies.setdefault(id(downstream), set()).add(upstream.name)

    def use(self, consumer: Node, channel: PipelineChannel) -> None:
        """Record that ``consumer`` (a task or a group) reads ``channel``."""
        source = flowing(channel)
        chain = self.origin(source)
        path = [*ancestors(consumer), consumer]
        k = 0
        while k < min(len(chain), len(path)) and chain[k] is path[k]:
            k += 1
        for group in path[k:]:
            if isinstance(group, TasksGroup):
                self.routing.inputs.setdefault(id(group), {})[source.full_name] = source
        self._export(chain, k, channel, consumer)
        if k < len(chain) and k < len(path):
            self._add_dependency(path[k], chain[k])
        sources = oneof_sources(source)
        if sources is not None:
            self._record_oneof(source, sources)

    def _export(
        self, chain: list[Node], k: int, channel: PipelineChannel, consumer: Node | None
    ) -> None:
        for i in range(max(k, 1), len(chain) - 1):
            group = chain[i]
            assert isinstance(group, TasksGroup)
            if group.kind == "for-loop" and collected_source(channel) is None:
                raise InvalidTopologyError(
                    f"{_who(consumer)} reads {channel!r}, which is produced inside "
                    f"dsl.ParallelFor {group.display_name or group.name!r}; read it inside the "
                    "loop or gather every iteration with dsl.Collected(...)"
                )
            if group.kind in ("condition", "condition-branches", "exit-handler") and (
                oneof_sources(channel) is None
            ):
                what = "dsl.ExitHandler" if group.kind == "exit-handler" else "dsl.If/Elif/Else"
                hint = (
                    " or pick the branch that ran with dsl.OneOf(...)"
                    if what != "dsl.ExitHandler"
                    else ""
                )
                raise InvalidTopologyError(
                    f"{_who(consumer)} reads {channel!r}, which is produced inside {what} "
                    f"{group.display_name or group.name!r}; read it inside that block{hint}"
                )
            child = chain[i + 1]
            self.routing.outputs.setdefault(id(group), {})[channel.full_name] = GroupOutput(
                channel, child, key_of(child, channel)
            )

    def _record_oneof(self, oneof: PipelineChannel, sources: list[PipelineChannel]) -> None:
        wrapper = oneof.oneof_group  # type: ignore[attr-defined]
        self.routing.oneofs.setdefault(id(wrapper), {})[oneof.full_name] = oneof
        for channel in sources:
            chain = self.origin(channel)
            b = next(i for i, node in enumerate(chain) if node is wrapper)
            for i in range(b + 1, len(chain) - 1):
                child = chain[i + 1]
                self.routing.outputs.setdefault(id(chain[i]), {})[channel.full_name] = GroupOutput(
                    channel, child, key_of(child, channel)
                )

    def after(self, task: PipelineTask, upstream: PipelineTask) -> None:
        """Record ``task.after(upstream)``."""
        chain: list[Node] = [*ancestors(upstream), upstream]
        path: list[Node] = [*ancestors(task), task]
        k = 0
        while chain[k] is path[k]:
            k += 1
        for group in chain[k:-1]:
            if group.kind != "for-loop":
                raise InvalidTopologyError(
                    f"task {task.name!r} runs after {upstream.name!r}, which is inside "
                    f"{group.name!r}; a task outside a dsl.If or dsl.ExitHandler block cannot "
                    "wait for a task inside it"
                )
        self._add_dependency(path[k], chain[k])

    def output(self, channel: PipelineChannel) -> tuple[Node, str]:
        """Record a pipeline output; returns the root-level producer and its key."""
        chain = self.origin(channel)
        if len(chain) < 2:
            raise InvalidTopologyError(f"{channel!r} cannot be a pipeline output")
        if isinstance(chain[1], TasksGroup) and chain[1].kind == "exit-handler":
            raise InvalidTopologyError(
                f"pipeline outputs cannot come from inside dsl.ExitHandler ({channel!r})"
            )
        self._export(chain, 1, channel, None)
        sources = oneof_sources(channel)
        if sources is not None:
            self._record_oneof(channel, sources)
        return chain[1], key_of(chain[1], channel)

    # -- the whole pipeline ---------------------------------------------------------------

    def channels_of(self, task: PipelineTask) -> list[PipelineChannel]:
        """Every channel ``task`` reads: arguments and channels inside f-strings."""
        found: list[PipelineChannel] = []
        for value in task.arguments.values():
            if isinstance(value, PipelineChannel):
                found.append(value)
            elif isinstance(value, str):
                found.extend(self.fstring_channels(value))
        return found

    def fstring_channels(self, text: str) -> list[PipelineChannel]:
        """The channels mentioned in an f-string argument."""
        result = []
        for match in CHANNEL_PATTERN.finditer(text):
            channel = self.graph.channels.get(match.group(0))
            if channel is None:
                raise InvalidTopologyError(
                    f"the f-string {text!r} mentions a channel that is not part of this pipeline"
                )
            result.append(channel)
        return result

    def run(self, tasks: list[PipelineTask], groups: list[TasksGroup]) -> Routing:
        """Route every channel, ``after`` dependency and pipeline output."""
        for group in groups:
            if group.kind == "for-loop":
                argument = group.loop_argument  # type: ignore[attr-defined]
                self.routing.inputs.setdefault(id(group), {})
                if argument.items_channel is not None:
                    self.use(group, argument.items_channel)
        for task in tasks:
            if task.exit_handler is not None:
                continue
            for channel in self.channels_of(task):
                self.use(task, channel)
            for group in ancestors(task):
                if group.kind == "condition":
                    for condition in group.conditions:  # type: ignore[attr-defined]
                        for channel in _condition_channels(condition):
                            self.use(task, channel)
            for upstream in task.after_tasks:
                self.after(task, upstream)
        return self.routing


def _condition_channels(condition: ConditionOperation) -> list[PipelineChannel]:
    return condition.channels()


def _who(consumer: Node | None) -> str:
    if consumer is None:
        return "the pipeline output"
    if isinstance(consumer, PipelineTask):
        return f"task {consumer.name!r}"
    return f"{consumer.name!r}"
