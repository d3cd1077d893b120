"""Input resolution and DAG outputs (pure functions of the engine)."""

from __future__ import annotations

from typing import Any

import pytest

from stepwell_scheduler.engine.plan import PipelinePlan
from stepwell_scheduler.engine.resolve import (
    InputResolutionError,
    coerce_to_type,
    resolve_dag_outputs,
    resolve_inputs,
)

JOB = {"pipeline_job_name": "run-1", "pipeline_root": "/root"}


def _lookup(outputs: dict[str, dict[str, Any]]):  # type: ignore[no-untyped-def]
    return outputs.get


def test_parameters_from_parent_producer_and_constants() -> None:
    task = {
        "inputs": {
            "parameters": {
                "a": {"componentInputParameter": "a"},
                "b": {"taskOutputParameter": {"producerTask": "up", "outputParameterKey": "Output"}},
                "c": {"runtimeValue": {"constant": 2.0}},
                "xs": {"runtimeValue": {"constant": [1.0, 2.5, {"k": 3.0}]}},
                "s": {"runtimeValue": {"constant": 7.0}},
                "job": {"runtimeValue": {"constant": "{{$.pipeline_job_name}}"}},
                "pipelinechannel--a": {"componentInputParameter": "a"},
                "f": {"runtimeValue": {"constant": "{{$.inputs.parameters['pipelinechannel--a']}}-x-{{$.pipeline_root}}"}},
            }
        }
    }
    component = {
        "inputDefinitions": {
            "parameters": {
                "a": {"parameterType": "NUMBER_INTEGER"},
                "b": {"parameterType": "STRING"},
                "c": {"parameterType": "NUMBER_INTEGER"},
                "xs": {"parameterType": "LIST"},
                "s": {"parameterType": "STRING"},
                "job": {"parameterType": "STRING"},
                "f": {"parameterType": "STRING"},
            }
        }
    }
    resolved = resolve_inputs(
        task, component, {"parameters": {"a": 3.0}}, _lookup({"up": {"parameters": {"Output": "hi"}}}), JOB
    )
    params = resolved["parameters"]
    assert params["a"] == 3 and isinstance(params["a"], int)
    assert params["b"] == "hi"
    assert params["c"] == 2 and isinstance(params["c"], int)
    assert params["xs"] == [1, 2.5, {"k": 3}] and isinstance(params["xs"][0], int)
    assert params["s"] == "7"
    assert params["job"] == "run-1"
    assert params["f"] == "3-x-/root"


def test_artifacts_from_producer_and_parent() -> None:
    task = {
        "inputs": {
            "artifacts": {
                "d": {"taskOutputArtifact": {"producerTask": "up", "outputArtifactKey": "ds"}},
                "m": {"componentInputArtifact": "model"},
            }
        }
    }
    ds = [{"uri": "/a/ds", "artifact_id": 7}]
    model = [{"uri": "/a/m", "artifact_id": 8}]
    resolved = resolve_inputs(
        task, {}, {"artifacts": {"model": model}}, _lookup({"up": {"artifacts": {"ds": ds}}}), JOB
    )
    assert resolved["artifacts"] == {"d": ds, "m": model}


def test_missing_values_are_errors_naming_the_input() -> None:
    task = {"inputs": {"parameters": {"b": {"taskOutputParameter": {"producerTask": "up", "outputParameterKey": "nope"}}}}}
    with pytest.raises(InputResolutionError, match=r"'b'.*'nope'"):
        resolve_inputs(task, {}, {}, _lookup({"up": {"parameters": {}}}), JOB)
    required = {"inputDefinitions": {"parameters": {"a": {"parameterType": "STRING"}}}}
    with pytest.raises(InputResolutionError, match="'a' is required"):
        resolve_inputs({"inputs": {"parameters": {"a": {"componentInputParameter": "a"}}}}, required, {}, _lookup({}), JOB)
    optional = {"inputDefinitions": {"parameters": {"a": {"parameterType": "STRING", "defaultValue": "d"}}}}
    assert resolve_inputs({}, optional, {}, _lookup({}), JOB)["parameters"] == {}


@pytest.mark.parametrize(
    ("value", "kind", "expected"),
    [(3.0, "NUMBER_INTEGER", 3), (2.5, "NUMBER_DOUBLE", 2.5), (3, "STRING", "3"), ({"a": 1.0}, "STRUCT", {"a": 1}), ([True], "STRING", "[true]")],
)
def test_coerce_to_type(value: Any, kind: str, expected: Any) -> None:
    result = coerce_to_type(value, kind)
    assert result == expected and type(result) is type(expected)


def test_dag_outputs_follow_selectors_and_oneof() -> None:
    dag = {
        "outputs": {
            "parameters": {
                "p": {"valueFromParameter": {"producerSubtask": "a", "outputParameterKey": "x"}},
                "o": {
                    "valueFromOneof": {
                        "parameterSelectors": [
                            {"producerSubtask": "skipped", "outputParameterKey": "y"},
                            {"producerSubtask": "b", "outputParameterKey": "y"},
                        ]
                    }
                },
            },
            "artifacts": {"m": {"artifactSelectors": [{"producerSubtask": "a", "outputArtifactKey": "model"}]}},
        }
    }
    children: dict[str, dict[str, Any]] = {"a": {"parameters": {"x": 1}, "artifacts": {"model": [{"uri": "/m"}]}}, "b": {"parameters": {"y": "B"}}}
    assert resolve_dag_outputs(dag, _lookup(children)) == {
        "parameters": {"p": 1, "o": "B"},
        "artifacts": {"m": [{"uri": "/m"}]},
    }


def test_plan_qualified_names_and_dependencies() -> None:
    spec = {
        "components": {
            "comp-inner": {"executorLabel": "exec-x"},
            "comp-sub": {"dag": {"tasks": {"inner": {"componentRef": {"name": "comp-inner"}}}}},
        },
        "deploymentSpec": {"executors": {"exec-x": {"container": {"image": "i"}}}},
        "root": {
            "dag": {
                "tasks": {
                    "first": {"componentRef": {"name": "comp-inner"}},
                    "sub": {
                        "componentRef": {"name": "comp-sub"},
                        "dependentTasks": ["first"],
                        "inputs": {
                            "parameters": {"p": {"taskOutputParameter": {"producerTask": "zero", "outputParameterKey": "o"}}}
                        },
                    },
                }
            }
        },
    }
    plan = PipelinePlan(spec)
    sub = plan.task("sub")
    assert sub.kind == "dag" and sub.dependencies() == {"first", "zero"}
    inner = plan.children("sub")[0]
    assert (inner.qualified, inner.parent, inner.kind) == ("sub/inner", "sub", "container")
    assert plan.task("sub/inner").component_name == "comp-inner"
