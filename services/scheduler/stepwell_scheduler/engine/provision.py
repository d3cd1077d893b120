"""Building a task attempt's launch: output URIs, the ExecutorInput and the task file.

Artifact URIs are ``<pipeline_root>/<pipeline>/<run_id>/<qualified task>/a<attempt>/<output>``,
so a rerun never overwrites an earlier attempt's outputs. For a local root they are
absolute paths and the task writes its outputs in place; for an S3 root the task works
on local copies under its scratch folder and the launcher uploads them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stepwell.runtime._launch_taskfile import ArtifactSlot, TaskFile
from stepwell.runtime.paths import local_path_for_uri
from stepwell.storage import join_uri
from stepwell_scheduler.engine.plan import PlannedTask
from stepwell_scheduler.models import RunRow, TaskRow

SCHEMA_VERSION = "0.0.1"


def run_root(pipeline_root: str, pipeline_name: str, run_id: str) -> str:
    """Where all of a run's artifacts live."""
    return join_uri(join_uri(pipeline_root, pipeline_name), run_id)


def attempt_root(pipeline_root: str, pipeline_name: str, run_id: str, qualified: str, attempt: int) -> str:
    """Where one task attempt's artifacts and log live."""
    return join_uri(run_root(pipeline_root, pipeline_name, run_id), f"{qualified}/a{attempt}")


def attempt_log_uri(pipeline_root: str, pipeline_name: str, run_id: str, qualified: str, attempt: int) -> str:
    """Where one task attempt's log is stored."""
    return join_uri(attempt_root(pipeline_root, pipeline_name, run_id, qualified, attempt), "executor-logs")


def _type(schema_title: str) -> dict[str, str]:
    return {"schemaTitle": schema_title or "system.Artifact", "schemaVersion": SCHEMA_VERSION}


def _schema_title(definition: Mapping[str, Any]) -> str:
    return str((definition.get("artifactType") or {}).get("schemaTitle") or "system.Artifact")


def build_task_file(
    *,
    run_id: str,
    pipeline_name: str,
    pipeline_root: str,
    task: PlannedTask,
    executor: Mapping[str, Any],
    inputs: Mapping[str, Any],
    attempt: int,
    attempt_dir: Path,
    job: Mapping[str, str],
    qualified: str = "",
) -> TaskFile:
    """The task file for one attempt of a container task with resolved ``inputs``.

    ``qualified`` is the task's name in the run (with loop indices); it defaults to the
    task's spec path.
    """
    qualified = qualified or task.qualified
    scratch = str(attempt_dir / "scratch")
    root = attempt_root(pipeline_root, pipeline_name, run_id, qualified, attempt)
    outputs_def = task.component.get("outputDefinitions") or {}

    input_artifacts: dict[str, list[ArtifactSlot]] = {}
    ei_input_artifacts: dict[str, Any] = {}
    for name, records in (inputs.get("artifacts") or {}).items():
        slots, entries = [], []
        for record in records:
            uri = str(record.get("uri", ""))
            title = str(record.get("schema_title") or "system.Artifact")
            slots.append(ArtifactSlot(uri=uri, path=local_path_for_uri(uri, scratch), schema_title=title))
            entries.append(
                {
                    "name": str(record.get("artifact_id") or ""),
                    "type": _type(title),
                    "uri": uri,
                    "metadata": dict(record.get("metadata") or {}),
                }
            )
        input_artifacts[name] = slots
        ei_input_artifacts[name] = {"artifacts": entries}

    output_artifacts: dict[str, list[ArtifactSlot]] = {}
    ei_output_artifacts: dict[str, Any] = {}
    for name, definition in (outputs_def.get("artifacts") or {}).items():
        uri = join_uri(root, name)
        title = _schema_title(definition)
        output_artifacts[name] = [ArtifactSlot(uri=uri, path=local_path_for_uri(uri, scratch), schema_title=title)]
        ei_output_artifacts[name] = {
            "artifacts": [
                {"name": name, "type": _type(title), "uri": uri, "metadata": dict(definition.get("metadata") or {})}
            ]
        }

    parameter_files = str(attempt_dir / "outputs")
    output_types: dict[str, str] = {}
    ei_output_params: dict[str, Any] = {}
    for name, definition in (outputs_def.get("parameters") or {}).items():
        output_types[name] = str(definition.get("parameterType") or "STRING")
        ei_output_params[name] = {"outputFile": os.path.join(parameter_files, name)}

    executor_input: dict[str, Any] = {
        "inputs": {"parameterValues": dict(inputs.get("parameters") or {})},
        "outputs": {
            "parameters": ei_output_params,
            "artifacts": ei_output_artifacts,
            "outputFile": os.path.join(local_path_for_uri(root, scratch), "output_metadata.json"),
        },
    }
    if ei_input_artifacts:
        executor_input["inputs"]["artifacts"] = ei_input_artifacts

    container = dict(executor.get("container") or {})
    return TaskFile(
        run_id=run_id,
        pipeline_name=pipeline_name,
        task_name=qualified,
        pipeline_root=pipeline_root,
        executor_input=executor_input,
        container={
            "image": container.get("image", ""),
            "command": list(container.get("command") or []),
            "args": list(container.get("args") or []),
            "env": list(container.get("env") or []),
        },
        scratch_dir=scratch,
        result_file=str(attempt_dir / "result.json"),
        log_file=str(attempt_dir / "task.log"),
        log_uri=attempt_log_uri(pipeline_root, pipeline_name, run_id, qualified, attempt),
        input_definitions=dict((task.component.get("inputDefinitions") or {}).get("parameters") or {}),
        output_parameter_types=output_types,
        input_artifacts=input_artifacts,
        output_artifacts=output_artifacts,
        job_placeholders=dict(job),
    )


def execution_properties(run: RunRow, row: TaskRow, attempt: int, image: str) -> dict[str, Any]:
    """An attempt's custom properties in the metadata service (found again by run, task and attempt)."""
    return {
        "display_name": row.display_name or row.name,
        "task_name": row.name,
        "parent_task": row.parent,
        "image": image,
        "attempt": attempt,
        "run_id": run.run_id,
        "cache_fingerprint": row.fingerprint or "",
    }


def task_timeout(run: RunRow, executor: dict[str, Any], deployment: dict[str, Any], component: dict[str, Any]) -> float:
    """Seconds a task attempt may run: the run's ``task_timeout_seconds`` option, or the
    kfp-kubernetes ``activeDeadlineSeconds`` of the task's executor (0: no limit)."""
    options = run.options or {}
    platform = ((options.get("platform_spec") or {}).get("platforms") or {}).get("kubernetes") or {}
    label = str(component.get("executorLabel") or "")
    k8s = ((platform.get("deploymentSpec") or {}).get("executors") or {}).get(label) or {}
    value = k8s.get("activeDeadlineSeconds") or options.get("task_timeout_seconds") or 0
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0
