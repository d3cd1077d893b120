"""KFP's cache fingerprint of a container task (kfp-facts §4.4).

Default key: the ``CacheKey`` message (``api/v2alpha1/cache_key.proto``) as protojson,
re-marshalled the way Go's ``encoding/json`` does (sorted keys, compact, whole-number
doubles without a fraction, ``<``/``>``/``&`` escaped), hashed with SHA-256::

    {"containerSpec": {"cmdArgs": [...raw command + args...], "image": "..."},
     "inputArtifactNames": {"in": {"artifactNames": ["<artifact id>", ...]}},
     "inputParameterValues": {...executor input parameterValues...},
     "outputArtifactsSpec": {"out": {"name": "out", "type": {...}, "metadata": {...}}},
     "outputParametersSpec": {"Output": "NUMBER_INTEGER"}}

With ``cachingOptions.cacheKey`` set, the fingerprint is
``sha256(componentRef.name + "\\x00" + cacheKey)`` instead. Input artifacts are named by
their metadata-service id, so a downstream task of a cache hit (which reuses the same
artifact records) gets the same fingerprint again.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any


def _go_numbers(value: Any) -> Any:
    if isinstance(value, float) and math.isfinite(value) and value.is_integer() and abs(value) < 1e21:
        return int(value)
    if isinstance(value, list):
        return [_go_numbers(v) for v in value]
    if isinstance(value, dict):
        return {k: _go_numbers(v) for k, v in value.items()}
    return value


def go_json(value: Any) -> str:
    """``value`` as Go's ``json.Marshal`` of an ``interface{}`` would write it."""
    text = json.dumps(_go_numbers(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def cache_key(
    component: Mapping[str, Any],
    executor: Mapping[str, Any],
    inputs: Mapping[str, Any],
) -> dict[str, Any]:
    """The ``CacheKey`` (as protojson) of a container task with resolved ``inputs``."""
    container = executor.get("container") or {}
    outputs = component.get("outputDefinitions") or {}
    artifact_names = {
        name: {"artifactNames": [str(r.get("artifact_id") or "") for r in records]}
        for name, records in (inputs.get("artifacts") or {}).items()
    }
    output_artifacts = {
        name: {
            "name": name,
            "type": {
                "schemaTitle": (d.get("artifactType") or {}).get("schemaTitle", ""),
                "schemaVersion": (d.get("artifactType") or {}).get("schemaVersion", ""),
            },
            **({"metadata": d["metadata"]} if d.get("metadata") else {}),
        }
        for name, d in (outputs.get("artifacts") or {}).items()
    }
    output_params = {name: str(d.get("parameterType") or "") for name, d in (outputs.get("parameters") or {}).items()}
    key = {
        "inputArtifactNames": artifact_names,
        "inputParameterValues": dict(inputs.get("parameters") or {}),
        "outputArtifactsSpec": output_artifacts,
        "outputParametersSpec": output_params,
        "containerSpec": {
            "image": container.get("image", ""),
            "cmdArgs": [*(container.get("command") or []), *(container.get("args") or [])],
        },
    }
    return {k: v for k, v in key.items() if v}  # protojson omits empty fields


def fingerprint_for_task(
    task_spec: Mapping[str, Any],
    component: Mapping[str, Any],
    executor: Mapping[str, Any],
    inputs: Mapping[str, Any],
) -> str:
    """The hex SHA-256 fingerprint of a task (custom ``cacheKey`` or the default key)."""
    custom = str((task_spec.get("cachingOptions") or {}).get("cacheKey") or "")
    if custom:
        name = str((task_spec.get("componentRef") or {}).get("name") or "")
        return hashlib.sha256(f"{name}\x00{custom}".encode()).hexdigest()
    text = go_json(cache_key(component, executor, inputs))
    return hashlib.sha256(text.encode()).hexdigest()
