"""Turn a traced pipeline (tasks in nested groups) into IR components, executors and DAGs.

Groups are visited root first, then depth-first (KFP's order); inside a group, child
groups come before tasks. That order decides the ``-2``/``-3`` suffixes of component
and executor names, so following it keeps names identical to KFP's.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from stepwell.compiler.conditions import conditions_to_cel
from stepwell.compiler.routing import PREFIX, Router, ancestors, flowing
from stepwell.dsl.channels import (
    CHANNEL_PATTERN,
    LoopArgumentVariable,
    PipelineArtifactChannel,
    PipelineChannel,
    PipelineParameterChannel,
)
from stepwell.dsl.control_flow import TasksGroup
from stepwell.dsl.graph import unique_name
from stepwell.dsl.importer_node import ImporterComponent
from stepwell.dsl.pipelines import Pipeline
from stepwell.dsl.resources import container_resources
from stepwell.dsl.tasks import PipelineTask, sanitize_name

COMPLETED = "ALL_UPSTREAM_TASKS_COMPLETED"


def _channel_definition(channel: PipelineChannel) -> tuple[str, dict[str, Any]]:
    if isinstance(channel, PipelineArtifactChannel):
        entry: dict[str, Any] = {
            "artifactType": {
                "schemaTitle": channel.artifact_class.schema_title,
                "schemaVersion": channel.artifact_class.schema_version,
            }
        }
        if channel.is_list:
            entry["isArtifactList"] = True
        return "artifacts", entry
    assert isinstance(channel, PipelineParameterChannel)
    return "parameters", {"parameterType": channel.parameter_type}


def _put(target: dict[str, Any], kind: str, name: str, entry: Any) -> None:
    target.setdefault(kind, {})[name] = entry


def rename_refs(
    spec: dict[str, Any], components: dict[str, str], executors: dict[str, str]
) -> None:
    """Rename ``componentRef``s and ``executorLabel`` inside one component spec, in place."""
    if "executorLabel" in spec:
        spec["executorLabel"] = executors.get(spec["executorLabel"], spec["executorLabel"])
    for task in (spec.get("dag") or {}).get("tasks", {}).values():
        ref = task["componentRef"]["name"]
        task["componentRef"]["name"] = components.get(ref, ref)


class DagBuilder:
    """Builds ``components``, ``executors`` and ``root`` for one pipeline."""

    def __init__(
        self,
        pipeline: Pipeline,
        compile_sub: Callable[[Pipeline], dict[str, Any]],
        interface_definitions: Callable[[Any], dict[str, Any]],
        to_value: Callable[[Any], Any],
    ) -> None:
        self.pipeline = pipeline
        self.compile_sub = compile_sub
        self.definitions = interface_definitions
        self.to_value = to_value
        self.components: dict[str, Any] = {}
        self.executors: dict[str, Any] = {}
        self.router = Router(pipeline)
        self.groups = self._all_groups(pipeline.graph.root)

    @staticmethod
    def _all_groups(root: TasksGroup) -> list[TasksGroup]:
        order = [root]
        for group in root.groups:
            order.extend(DagBuilder._all_groups(group))
        return order

    # -- entry point ----------------------------------------------------------------------

    def build(self) -> dict[str, Any]:
        """Compile; returns ``{"components", "executors", "root"}``."""
        pipeline = self.pipeline
        tasks = list(pipeline.tasks.values())
        routing = self.router.run(tasks, self.groups)
        outputs = {key: self.router.output(ch) for key, ch in pipeline.outputs.items()}
        self.routing = routing
        dags: dict[int, dict[str, Any]] = {id(g): {} for g in self.groups}
        for group in self.groups:
            children = group.groups + [c for c in group.children if isinstance(c, PipelineTask)]
            for child in children:
                if isinstance(child, TasksGroup):
                    name, spec = self._group_component(child)
                    dags[id(group)][child.name] = self._group_task(child, name, group)
                    self.components[name] = spec
                    self.group_specs[id(child)] = spec
                else:
                    dags[id(group)][child.name] = self._task(child, group)
            if group.kind != "root":
                self.group_specs[id(group)]["dag"]["tasks"] = dags[id(group)]
        for group in self.groups[0].groups:
            if group.kind == "exit-handler":
                exit_task = group.exit_task  # type: ignore[attr-defined]
                dags[id(self.groups[0])][exit_task.name] = self._task(
                    exit_task, self.groups[0], exit_group=group
                )
        root: dict[str, Any] = {"dag": {"tasks": dags[id(self.groups[0])]}}
        if outputs:
            root["dag"]["outputs"] = self._dag_outputs(
                {key: (pipeline.outputs[key], node, k) for key, (node, k) in outputs.items()}
            )
        root.update(self.definitions(pipeline.interface))
        return {"components": self.components, "executors": self.executors, "root": root}

    @property
    def group_specs(self) -> dict[int, dict[str, Any]]:
        if not hasattr(self, "_group_specs"):
            self._group_specs: dict[int, dict[str, Any]] = {}
        return self._group_specs

    # -- groups ---------------------------------------------------------------------------

    def _group_component(self, group: TasksGroup) -> tuple[str, dict[str, Any]]:
        inputs: dict[str, Any] = {}
        for name, channel in sorted(self.routing.inputs.get(id(group), {}).items()):
            kind, entry = _channel_definition(channel)
            _put(inputs, kind, PREFIX + name, entry)
        if group.kind == "for-loop":
            argument = group.loop_argument  # type: ignore[attr-defined]
            _put(
                inputs,
                "parameters",
                PREFIX + argument.full_name,
                {"parameterType": argument.parameter_type},
            )
        spec: dict[str, Any] = {"dag": {"tasks": {}}}
        if inputs:
            spec["inputDefinitions"] = inputs
        outputs: dict[str, Any] = {}
        dag_outputs: dict[str, Any] = {}
        for name, out in self.routing.outputs.get(id(group), {}).items():
            kind, entry = _channel_definition(out.channel)
            if group.kind == "for-loop":
                if kind == "parameters":
                    entry = {"parameterType": "LIST"}
                else:
                    entry["isArtifactList"] = True
            _put(outputs, kind, PREFIX + name, entry)
            if kind == "artifacts":
                _put(
                    dag_outputs,
                    kind,
                    PREFIX + name,
                    {
                        "artifactSelectors": [
                            {"producerSubtask": out.child.name, "outputArtifactKey": out.key}
                        ]
                    },
                )
            else:
                _put(
                    dag_outputs,
                    kind,
                    PREFIX + name,
                    {
                        "valueFromParameter": {
                            "producerSubtask": out.child.name,
                            "outputParameterKey": out.key,
                        }
                    },
                )
        for name, oneof in self.routing.oneofs.get(id(group), {}).items():
            kind, entry = _channel_definition(oneof)
            _put(outputs, kind, PREFIX + name, entry)
            selectors = []
            for source in oneof.oneof_of or []:
                producer = self.pipeline.tasks[source.task_name or ""]
                branch = next(g for g in ancestors(producer) if g.parent is group)
                selectors.append((branch.name, PREFIX + source.full_name))
            if kind == "artifacts":
                _put(
                    dag_outputs,
                    kind,
                    PREFIX + name,
                    {
                        "artifactSelectors": [
                            {"producerSubtask": b, "outputArtifactKey": k} for b, k in selectors
                        ]
                    },
                )
            else:
                _put(
                    dag_outputs,
                    kind,
                    PREFIX + name,
                    {
                        "valueFromOneof": {
                            "parameterSelectors": [
                                {"producerSubtask": b, "outputParameterKey": k}
                                for b, k in selectors
                            ]
                        }
                    },
                )
        if outputs:
            spec["outputDefinitions"] = outputs
            spec["dag"]["outputs"] = dag_outputs
        name = unique_name(f"comp-{group.name}", set(self.components))
        return name, spec

    def _group_task(self, group: TasksGroup, component: str, parent: TasksGroup) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "taskInfo": {"name": group.display_name or group.name},
            "componentRef": {"name": component},
        }
        own = None
        if group.kind == "for-loop":
            own = group.loop_argument  # type: ignore[attr-defined]
        inputs: dict[str, Any] = {}
        for name, channel in self.routing.inputs.get(id(group), {}).items():
            if own is not None and channel is own:
                continue
            self._add_input(inputs, PREFIX + name, channel, parent)
        if inputs:
            spec["inputs"] = inputs
        deps = sorted(self.routing.dependencies.get(id(group), set()))
        if deps:
            spec["dependentTasks"] = deps
        if group.kind == "condition":
            spec["triggerPolicy"] = {"condition": conditions_to_cel(group.conditions)}  # type: ignore[attr-defined]
        if own is not None:
            iterator: dict[str, Any] = {"itemInput": PREFIX + own.full_name}
            if own.items_channel is not None:
                iterator["items"] = {"inputParameter": PREFIX + own.items_channel.full_name}
            else:
                iterator["items"] = {"raw": own.raw_json}
            spec["parameterIterator"] = iterator
            if group.parallelism:  # type: ignore[attr-defined]
                spec["iteratorPolicy"] = {"parallelismLimit": group.parallelism}  # type: ignore[attr-defined]
        return spec

    # -- inputs ---------------------------------------------------------------------------

    def _add_input(
        self, inputs: dict[str, Any], name: str, channel: PipelineChannel, dag: TasksGroup
    ) -> None:
        how, where = self.router.source_in(dag, channel)
        entry: dict[str, Any]
        is_artifact = isinstance(flowing(channel), PipelineArtifactChannel)
        if how == "task":
            producer, key = where
            if is_artifact:
                entry = {"taskOutputArtifact": {"producerTask": producer, "outputArtifactKey": key}}
            else:
                entry = {
                    "taskOutputParameter": {"producerTask": producer, "outputParameterKey": key}
                }
        elif is_artifact:
            entry = {"componentInputArtifact": where}
        else:
            entry = {"componentInputParameter": where}
        if isinstance(channel, LoopArgumentVariable):
            entry["parameterExpressionSelector"] = channel.selector
        _put(inputs, "artifacts" if is_artifact else "parameters", name, entry)

    def _task_inputs(self, task: PipelineTask, dag: TasksGroup) -> dict[str, Any]:
        inputs: dict[str, Any] = {}
        for name, value in task.arguments.items():
            if isinstance(value, PipelineChannel):
                self._add_input(inputs, name, value, dag)
            elif isinstance(value, str) and CHANNEL_PATTERN.search(value):
                text = value
                for channel in self.router.fstring_channels(value):
                    extra = PREFIX + flowing(channel).full_name
                    text = text.replace(channel.pattern, f"{{{{$.inputs.parameters['{extra}']}}}}")
                    self._add_input(inputs, extra, channel, dag)
                _put(inputs, "parameters", name, {"runtimeValue": {"constant": text}})
            else:
                _put(
                    inputs, "parameters", name, {"runtimeValue": {"constant": self.to_value(value)}}
                )
        return inputs

    # -- tasks ----------------------------------------------------------------------------

    def _task(
        self, task: PipelineTask, dag: TasksGroup, exit_group: TasksGroup | None = None
    ) -> dict[str, Any]:
        component_spec = self._task_component(task)
        spec: dict[str, Any] = {
            "taskInfo": {"name": task.display_name or task.name},
        }
        inputs = self._task_inputs(task, dag)
        deps = sorted(self.routing.dependencies.get(id(task), set()))
        if exit_group is not None:
            deps = [exit_group.name]
            spec["triggerPolicy"] = {"strategy": COMPLETED}
        elif task.ignore_upstream_failure_set:
            spec["triggerPolicy"] = {"strategy": COMPLETED}
        for name, io in task.component.interface.inputs.items():
            if io.parameter_type != "TASK_FINAL_STATUS":
                continue
            if exit_group is not None:
                producer = exit_group.name
            elif task.ignore_upstream_failure_set and len(deps) == 1:
                producer = deps[0]
            else:
                raise ValueError(
                    f"task {task.name!r}: a PipelineTaskFinalStatus input needs the task to be "
                    "the exit task of a dsl.ExitHandler, or to use .ignore_upstream_failure() "
                    "with exactly one upstream task"
                )
            _put(inputs, "parameters", name, {"taskFinalStatus": {"producerTask": producer}})
        if inputs:
            spec["inputs"] = inputs
        if deps:
            spec["dependentTasks"] = deps
        caching: dict[str, Any] = {"enableCache": True} if task.enable_caching else {}
        if task.cache_key:
            caching["cacheKey"] = task.cache_key
        spec["cachingOptions"] = caching
        if task.retry_policy is not None:
            spec["retryPolicy"] = task.retry_policy.to_ir()
        name = unique_name(f"comp-{task.name}", set(self.components))
        self.components[name] = component_spec
        spec["componentRef"] = {"name": name}
        return spec

    def _executor_label(self, component_name: str) -> str:
        return unique_name(f"exec-{sanitize_name(component_name)}", set(self.executors))

    def _task_component(self, task: PipelineTask) -> dict[str, Any]:
        component = task.component
        sub_spec = getattr(component, "pipeline_spec", None)
        if isinstance(component, Pipeline) or sub_spec is not None:
            if task.env or task.resources:
                raise ValueError(
                    f"task {task.name!r} runs a pipeline; resources and environment variables "
                    "can only be set on tasks that run a container"
                )
            body = self.compile_sub(component) if isinstance(component, Pipeline) else sub_spec
            assert body is not None
            return self._merge(copy.deepcopy(body))
        label = self._executor_label(task.name)
        spec = {"executorLabel": label, **self.definitions(component.interface)}
        if isinstance(component, ImporterComponent):
            self.executors[label] = {"importer": component.importer_spec(self.to_value)}
            return spec
        container = component.container_spec()
        if container is None:
            raise TypeError(f"component {component.name!r} cannot be compiled")
        if task.env:
            container["env"] = [{"name": k, "value": v} for k, v in task.env.items()]
        resources = container_resources(task.resources)
        if resources:
            container["resources"] = resources
        self.executors[label] = {"container": container}
        return spec

    def _merge(self, body: dict[str, Any]) -> dict[str, Any]:
        """Add a nested pipeline's components and executors; return its root as a component."""
        executors = {old: unique_name(old, set(self.executors)) for old in body["executors"]}
        for old, new in executors.items():
            self.executors[new] = body["executors"][old]
        components: dict[str, str] = {}
        for old in body["components"]:
            components[old] = unique_name(old, set(self.components))
            self.components[components[old]] = None  # reserve the name
        for old, new in components.items():
            spec = body["components"][old]
            rename_refs(spec, components, executors)
            self.components[new] = spec
        root = body["root"]
        rename_refs(root, components, executors)
        return root

    def _dag_outputs(self, outputs: dict[str, tuple[PipelineChannel, Any, str]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, (channel, node, output_key) in outputs.items():
            if isinstance(channel, PipelineArtifactChannel):
                _put(
                    result,
                    "artifacts",
                    key,
                    {
                        "artifactSelectors": [
                            {"producerSubtask": node.name, "outputArtifactKey": output_key}
                        ]
                    },
                )
            else:
                _put(
                    result,
                    "parameters",
                    key,
                    {
                        "valueFromParameter": {
                            "producerSubtask": node.name,
                            "outputParameterKey": output_key,
                        }
                    },
                )
        return result
