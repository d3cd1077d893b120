"""What ``stepwell run`` prints when the run is over: JSON for programs, text for people."""

from __future__ import annotations

import json
from typing import Any

from stepwell.client.types import ArtifactRef, Outputs, Run


def _artifacts(refs: list[ArtifactRef]) -> list[dict[str, Any]]:
    return [{"uri": a.uri, "metadata": a.metadata} for a in refs]


def _task_outputs(outputs: Outputs) -> dict[str, Any]:
    return {
        "parameters": outputs.parameters,
        "artifacts": {name: _artifacts(refs) for name, refs in outputs.artifacts.items()},
    }


def pipeline_outputs(run: Run) -> dict[str, Any]:
    """The run's pipeline outputs: parameters as values, artifacts as ``[{uri, metadata}]``."""
    merged: dict[str, Any] = dict(run.outputs.parameters)
    merged.update({name: _artifacts(refs) for name, refs in run.outputs.artifacts.items()})
    return merged


def run_json(run: Run) -> dict[str, Any]:
    """The one JSON object ``stepwell run --json`` writes to stdout."""
    return {
        "run_id": run.run_id,
        "state": run.state,
        "outputs": pipeline_outputs(run),
        "tasks": {
            task.task_id: {"state": task.state, "cached": task.cached, "outputs": _task_outputs(task.outputs)}
            for task in run.tasks
        },
    }


def run_text(run: Run) -> str:
    """A short human summary: the final state and the pipeline's outputs."""
    took = ""
    if run.created_at and run.finished_at:
        took = f" in {(run.finished_at - run.created_at).total_seconds():.2f}s"
    lines = [f"run {run.run_id} {run.state}{took}"]
    outputs = pipeline_outputs(run)
    if outputs:
        lines.append("outputs:")
        for name, value in outputs.items():
            lines.append(f"  {name} = {json.dumps(value)}")
    return "\n".join(lines)
