"""ParallelFor helpers: the items a loop iterates over and its collected outputs (kfp-facts §2.5)."""

from __future__ import annotations

import collections
import json
from dataclasses import dataclass
from typing import Any

from stepwell_scheduler.engine.plan import PlannedTask
from stepwell_scheduler.engine.resolve import InputResolutionError
from stepwell_scheduler.models import FAILED, FINAL_STATES, TaskRow


def loop_items(task: PlannedTask, parameters: dict[str, Any]) -> list[Any]:
    """The items a ParallelFor iterates over (``items.raw`` JSON or a list input parameter)."""
    iterator = task.spec.get("parameterIterator") or {}
    items_spec = iterator.get("items") or {}
    if "raw" in items_spec:
        raw = items_spec["raw"]
        try:
            items = json.loads(raw) if isinstance(raw, str) else raw
        except json.JSONDecodeError as err:
            raise InputResolutionError(f"the loop items {raw!r} are not JSON: {err}") from None
    else:
        source = str(items_spec.get("inputParameter") or "")
        if source not in parameters:
            raise InputResolutionError(f"the loop input {source!r} has no value")
        items = parameters[source]
        if isinstance(items, str):
            try:
                items = json.loads(items)
            except json.JSONDecodeError:
                raise InputResolutionError(f"the loop input {source!r} is not a list: {items!r}") from None
    if not isinstance(items, list):
        raise InputResolutionError(f"the loop items are not a list: {items!r}")
    return items


def collect_iterations(dag: dict[str, Any], iterations: list[TaskRow]) -> dict[str, Any]:
    """A loop's outputs: each declared DAG output gathered over the iterations, in order."""
    spec = dag.get("outputs") or {}
    parameters: dict[str, Any] = {}
    for name in spec.get("parameters") or {}:
        parameters[name] = [
            (it.outputs or {}).get("parameters", {})[name]
            for it in iterations
            if name in ((it.outputs or {}).get("parameters") or {})
        ]
    artifacts: dict[str, list[dict[str, Any]]] = {}
    for name in spec.get("artifacts") or {}:
        artifacts[name] = [a for it in iterations for a in ((it.outputs or {}).get("artifacts") or {}).get(name) or []]
    return {"parameters": parameters, "artifacts": artifacts}

@dataclass
class LoopProgress:
    """A running loop's iterations: those not created yet (in index order), those not
    finished, and whether one failed."""

    missing: collections.deque[int]
    unfinished: set[int]
    failed: bool

    @classmethod
    def of(cls, iterations: list[TaskRow | None]) -> LoopProgress:
        return cls(
            missing=collections.deque(i for i, it in enumerate(iterations) if it is None),
            unfinished={i for i, it in enumerate(iterations) if it is not None and it.state not in FINAL_STATES},
            failed=any(it is not None and it.state == FAILED for it in iterations),
        )

    def note(self, index: int, state: str) -> None:
        """Records the current state of iteration ``index``."""
        if state in FINAL_STATES:
            self.unfinished.discard(index)
            self.failed = self.failed or state == FAILED
        else:
            self.unfinished.add(index)
