"""Switching caching on or off for every task of a pipeline spec."""

from __future__ import annotations

import copy
from typing import Any


def with_caching(spec: dict[str, Any], enabled: bool) -> dict[str, Any]:
    """A copy of ``spec`` whose tasks, in every DAG, have caching set to ``enabled``.

    Unlike ``kfp.Client(enable_caching=...)``, which rewrites only the root DAG's tasks,
    this reaches the tasks inside nested pipelines, loops and conditions too. Control-flow
    DAG tasks (conditions, loops, exit handlers) carry no caching options and stay so.
    """
    result = copy.deepcopy(spec)
    ir = result.get("pipeline_spec", result)
    dags = [ir.get("root", {}), *(ir.get("components") or {}).values()]
    for component in dags:
        for task in ((component.get("dag") or {}).get("tasks") or {}).values():
            options = task.get("cachingOptions")
            if options is None:
                continue  # a control-flow DAG task: KFP gives those no caching options
            if enabled:
                options["enableCache"] = True
            else:
                options.pop("enableCache", None)
                options.pop("cacheKey", None)
    return result
