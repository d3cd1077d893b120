"""Control flow: ``dsl.If``/``Elif``/``Else`` (and ``dsl.Condition``), ``dsl.ParallelFor``,
``dsl.ExitHandler`` and ``dsl.OneOf``.

Each ``with`` block is a group of tasks that compiles to a sub-DAG. Groups are named as
KFP names them — ``condition-N``, ``condition-branches-N``, ``for-loop-N``,
``exit-handler-N`` with one counter per pipeline — so the IR matches KFP's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stepwell.dsl.channels import (
    ConditionOperation,
    LoopArgument,
    PipelineArtifactChannel,
    PipelineChannel,
    PipelineParameterChannel,
)

if TYPE_CHECKING:
    from stepwell.dsl.graph import PipelineGraph
    from stepwell.dsl.tasks import PipelineTask


class InvalidControlFlowError(ValueError):
    """Control-flow blocks used in an order or place that cannot compile."""


def _graph(what: str) -> PipelineGraph:
    from stepwell.dsl.graph import require_graph

    return require_graph(what)


class TasksGroup:
    """A group of tasks and nested groups; compiles to a sub-DAG (``root`` is the pipeline)."""

    kind = "root"

    def __init__(self, kind: str, name: str | None = None) -> None:
        self.kind = kind
        self.name = name or ""
        self.display_name = name if kind != "root" else None
        self.children: list[Any] = []  # PipelineTask | TasksGroup, in creation order
        self.parent: TasksGroup | None = None
        self._graph: PipelineGraph | None = None

    @property
    def groups(self) -> list[TasksGroup]:
        """The direct child groups, in creation order."""
        return [c for c in self.children if isinstance(c, TasksGroup)]

    def _open(self, what: str) -> None:
        graph = _graph(what)
        self._graph = graph
        self.name = f"{self.kind}-{graph.next_group_id()}"
        self.parent = graph.current_group
        self.parent.children.append(self)
        graph.stack.append(self)

    def __enter__(self) -> Any:
        self._open(f"dsl.{type(self).__name__}")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._graph is not None
        self._graph.stack.pop()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class ConditionBranches(TasksGroup):
    """The group around an ``If``/``Elif``/``Else`` chain (made when ``Elif``/``Else`` starts)."""

    def __init__(self) -> None:
        super().__init__("condition-branches")
        self.oneof_count = 0


class _ConditionBase(TasksGroup):
    def __init__(self, conditions: list[ConditionOperation], name: str | None) -> None:
        super().__init__("condition", name)
        self.display_name = name
        self.conditions = conditions
        self.negated_upstream: list[ConditionOperation] = []


def _check_condition(condition: Any, what: str) -> ConditionOperation:
    if isinstance(condition, ConditionOperation):
        return condition
    if isinstance(condition, PipelineChannel):
        raise TypeError(
            f"{what} takes a comparison such as `task.output == True`, not a bare channel"
        )
    raise TypeError(f"{what} takes a comparison of a pipeline channel, not {condition!r}")


class If(_ConditionBase):
    """``with dsl.If(task.output > 3):`` runs the block only when the condition holds."""

    def __init__(self, condition: ConditionOperation, name: str | None = None) -> None:
        condition = _check_condition(condition, f"dsl.{type(self).__name__}")
        super().__init__([condition], name)
        self.negated_upstream = [condition.negated()]


class Condition(If):
    """The older name of ``dsl.If``."""


def _previous_condition(what: str) -> _ConditionBase:
    graph = _graph(what)
    groups = graph.current_group.groups
    last = groups[-1] if groups else None
    if isinstance(last, ConditionBranches):
        raise InvalidControlFlowError(
            f"{what} cannot follow a dsl.Else; it must follow a dsl.If or dsl.Elif"
        )
    if not isinstance(last, _ConditionBase) or graph.current_group.children[-1] is not last:
        raise InvalidControlFlowError(f"{what} must directly follow a dsl.If or dsl.Elif block")
    return last


def _wrap_in_branches(previous: _ConditionBase) -> None:
    """Put ``previous`` (an ``If``) inside a new ``condition-branches`` group, as KFP does."""
    graph = previous._graph
    assert graph is not None and previous.parent is not None
    if previous.parent.kind == "condition-branches":
        return
    wrapper = ConditionBranches()
    wrapper._graph = graph
    new_id = graph.next_group_id()
    # The wrapper takes the If's number and the If the new one, so numbers read in order.
    wrapper.name = f"condition-branches-{previous.name.rsplit('-', 1)[1]}"
    previous.name = f"condition-{new_id}"
    parent = previous.parent
    parent.children.remove(previous)
    parent.children.append(wrapper)
    wrapper.parent = parent
    wrapper.children.append(previous)
    previous.parent = wrapper
    graph.stack.append(wrapper)


class Elif(_ConditionBase):
    """``with dsl.Elif(cond):`` after a ``dsl.If``/``dsl.Elif``."""

    def __init__(self, condition: ConditionOperation, name: str | None = None) -> None:
        condition = _check_condition(condition, "dsl.Elif")
        previous = _previous_condition("dsl.Elif")
        super().__init__([*previous.negated_upstream, condition], name)
        self.negated_upstream = [*previous.negated_upstream, condition.negated()]
        self._previous = previous

    def __enter__(self) -> Elif:
        _wrap_in_branches(self._previous)
        self._open("dsl.Elif")
        return self


class Else(_ConditionBase):
    """``with dsl.Else():`` after a ``dsl.If``/``dsl.Elif``; closes the chain."""

    def __init__(self, name: str | None = None) -> None:
        previous = _previous_condition("dsl.Else")
        super().__init__(list(previous.negated_upstream), name)
        self._previous = previous

    def __enter__(self) -> Else:
        _wrap_in_branches(self._previous)
        self._open("dsl.Else")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._graph is not None
        self._graph.stack.pop()  # the Else
        self._graph.stack.pop()  # and the condition-branches group around the chain


class ParallelFor(TasksGroup):
    """``with dsl.ParallelFor(items, parallelism=N) as item:`` runs the block per item.

    ``items`` is a list written in the source or a list channel (a pipeline input or a
    task output); ``parallelism`` limits how many iterations run at once (0: no limit).
    """

    def __init__(self, items: Any, name: str | None = None, parallelism: int | None = None) -> None:
        super().__init__("for-loop", name)
        parallelism = parallelism or 0
        if not isinstance(parallelism, int) or parallelism < 0:
            raise ValueError(
                f"dsl.ParallelFor parallelism must be an int >= 0, not {parallelism!r}"
            )
        self.parallelism = parallelism
        if isinstance(items, PipelineChannel):
            self.loop_argument = LoopArgument.from_channel(items)
        else:
            code = _graph("dsl.ParallelFor").next_group_id()
            self.loop_argument = LoopArgument.from_raw(items, code)
        self.loop_argument.group = self

    def __enter__(self) -> LoopArgument:  # type: ignore[override]
        self._open("dsl.ParallelFor")
        assert self._graph is not None
        self._graph.register(self.loop_argument)
        return self.loop_argument


class ExitHandler(TasksGroup):
    """``with dsl.ExitHandler(exit_task):`` runs ``exit_task`` after the block, however it ends.

    The exit task must not depend on other tasks; a ``dsl.PipelineTaskFinalStatus``
    parameter of it receives the block's final status.
    """

    def __init__(self, exit_task: PipelineTask, name: str | None = None) -> None:
        super().__init__("exit-handler", name)
        from stepwell.dsl.tasks import PipelineTask

        if not isinstance(exit_task, PipelineTask):
            raise TypeError(f"dsl.ExitHandler takes the exit task, not {exit_task!r}")
        if exit_task.upstream_tasks():
            raise ValueError(
                f"the exit task {exit_task.name!r} cannot depend on other tasks; pass it only "
                "constants and pipeline inputs"
            )
        self.exit_task = exit_task
        exit_task.exit_handler = self
        graph = _graph("dsl.ExitHandler")
        if graph.current_group.kind != "root":
            raise InvalidControlFlowError(
                "dsl.ExitHandler can only be used at the top level of a pipeline function"
            )
        if exit_task.group is not None:
            exit_task.group.children.remove(exit_task)


def OneOf(*channels: PipelineChannel) -> PipelineChannel:
    """The output of whichever ``dsl.If``/``Elif``/``Else`` branch ran.

    Pass one output from each branch of one chain (the chain must end with ``dsl.Else``).
    """
    if len(channels) < 2 or not all(isinstance(c, PipelineChannel) for c in channels):
        raise TypeError("dsl.OneOf takes two or more task outputs, one from each branch")
    graph = _graph("dsl.OneOf")
    branches: list[TasksGroup] = []
    wrapper: TasksGroup | None = None
    for channel in channels:
        task = graph.tasks.get(channel.task_name or "")
        if task is None:
            raise TypeError(f"dsl.OneOf takes task outputs, not {channel!r}")
        group = task.group
        while group is not None and not (
            group.kind == "condition" and group.parent and group.parent.kind == "condition-branches"
        ):
            group = group.parent
        if group is None or group.parent is None:
            raise InvalidControlFlowError(
                f"dsl.OneOf: task {task.name!r} is not inside a dsl.If/Elif/Else branch"
            )
        if wrapper is None:
            wrapper = group.parent
        elif group.parent is not wrapper:
            raise InvalidControlFlowError(
                "dsl.OneOf takes outputs from the branches of one dsl.If/Elif/Else chain"
            )
        if any(b is group for b in branches):
            raise InvalidControlFlowError("dsl.OneOf takes exactly one output from each branch")
        branches.append(group)
    assert isinstance(wrapper, ConditionBranches)
    if not isinstance(wrapper.children[-1], Else):
        raise InvalidControlFlowError("dsl.OneOf needs a chain that ends with a dsl.Else")
    if len(branches) != len(wrapper.groups):
        raise InvalidControlFlowError("dsl.OneOf needs one output from every branch of the chain")
    wrapper.oneof_count += 1
    first = channels[0]
    result: PipelineChannel
    name = f"oneof-{wrapper.oneof_count}"
    if isinstance(first, PipelineArtifactChannel):
        result = PipelineArtifactChannel(name, first.artifact_class, wrapper.name)
    else:
        assert isinstance(first, PipelineParameterChannel)
        for other in channels[1:]:
            if getattr(other, "parameter_type", None) != first.parameter_type:
                raise TypeError("dsl.OneOf outputs must all have the same type")
        result = PipelineParameterChannel(name, first.parameter_type, wrapper.name)
    result.oneof_of = list(channels)
    result.oneof_group = wrapper
    return result
