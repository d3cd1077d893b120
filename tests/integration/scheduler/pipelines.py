"""Hand-written PipelineSpecs (KFP IR 2.1.0) with plain argv container commands."""

from __future__ import annotations

from typing import Any

PRODUCE = r"""
import sys, os
n, data_path, count_path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
os.makedirs(os.path.dirname(data_path), exist_ok=True)
with open(data_path, "w") as f:
    for i in range(n):
        f.write(f"{i}\n")
with open(count_path, "w") as f:
    f.write(str(n))
print("produced", n, "rows")
"""

CONSUME = r"""
import json, sys, os
data_path, count, tag, report_path, out_file = sys.argv[1:6]
values = [int(line) for line in open(data_path)]
assert len(values) == int(count), (len(values), count)
os.makedirs(report_path, exist_ok=True)
with open(os.path.join(report_path, "sum.txt"), "w") as f:
    f.write(str(sum(values)))
with open(os.path.join(report_path, "tag.txt"), "w") as f:
    f.write(tag)
os.makedirs(os.path.dirname(out_file), exist_ok=True)
json.dump({"parameterValues": {"total": sum(values)},
           "artifacts": {"report": {"artifacts": [{"name": "report", "metadata": {"rows": len(values)}}]}}},
          open(out_file, "w"))
print("consumed", len(values), "tag", tag)
"""

SUMMARIZE = r"""
import sys
report, out = sys.argv[1], sys.argv[2]
total = open(report + "/sum.txt").read()
tag = open(report + "/tag.txt").read()
open(out, "w").write(f"{tag}:{total}")
"""

FAIL = r"""
import sys
print("about to fail")
print("bad thing happened", file=sys.stderr)
sys.exit(3)
"""

SLEEP = r"""
import sys, time, json
start = time.time()
time.sleep(float(sys.argv[1]))
open(sys.argv[2], "w").write(json.dumps([start, time.time()]))
"""

DATASET = {"schemaTitle": "system.Dataset", "schemaVersion": "0.0.1"}
ARTIFACT = {"schemaTitle": "system.Artifact", "schemaVersion": "0.0.1"}


def _exec(script: str, args: list[str]) -> dict[str, Any]:
    return {"container": {"image": "python:3.11", "command": ["python3", "-c", script], "args": args}}


def three_task_pipeline() -> dict[str, Any]:
    """produce -> consume -> wrap/summarize (a nested DAG), passing parameters and artifacts."""
    return {
        "pipelineInfo": {"name": "three-steps"},
        "schemaVersion": "2.1.0",
        "sdkVersion": "kfp-2.17.3",
        "deploymentSpec": {
            "executors": {
                "exec-produce": _exec(
                    PRODUCE,
                    [
                        "{{$.inputs.parameters['n']}}",
                        "{{$.outputs.artifacts['data'].path}}",
                        "{{$.outputs.parameters['count'].output_file}}",
                    ],
                ),
                "exec-consume": _exec(
                    CONSUME,
                    [
                        "{{$.inputs.artifacts['data'].path}}",
                        "{{$.inputs.parameters['count']}}",
                        "{{$.inputs.parameters['tag']}}",
                        "{{$.outputs.artifacts['report'].path}}",
                        "{{$.outputs.output_file}}",
                    ],
                ),
                "exec-summarize": _exec(
                    SUMMARIZE,
                    ["{{$.inputs.artifacts['report'].path}}", "{{$.outputs.parameters['summary'].output_file}}"],
                ),
            }
        },
        "components": {
            "comp-produce": {
                "executorLabel": "exec-produce",
                "inputDefinitions": {"parameters": {"n": {"parameterType": "NUMBER_INTEGER"}}},
                "outputDefinitions": {
                    "artifacts": {"data": {"artifactType": DATASET}},
                    "parameters": {"count": {"parameterType": "NUMBER_INTEGER"}},
                },
            },
            "comp-consume": {
                "executorLabel": "exec-consume",
                "inputDefinitions": {
                    "artifacts": {"data": {"artifactType": DATASET}},
                    "parameters": {
                        "count": {"parameterType": "NUMBER_INTEGER"},
                        "tag": {"parameterType": "STRING"},
                    },
                },
                "outputDefinitions": {
                    "artifacts": {"report": {"artifactType": ARTIFACT}},
                    "parameters": {"total": {"parameterType": "NUMBER_INTEGER"}},
                },
            },
            "comp-summarize": {
                "executorLabel": "exec-summarize",
                "inputDefinitions": {"artifacts": {"report": {"artifactType": ARTIFACT}}},
                "outputDefinitions": {"parameters": {"summary": {"parameterType": "STRING"}}},
            },
            "comp-wrap": {
                "inputDefinitions": {"artifacts": {"report": {"artifactType": ARTIFACT}}},
                "outputDefinitions": {"parameters": {"summary": {"parameterType": "STRING"}}},
                "dag": {
                    "tasks": {
                        "summarize": {
                            "taskInfo": {"name": "summarize"},
                            "componentRef": {"name": "comp-summarize"},
                            "inputs": {"artifacts": {"report": {"componentInputArtifact": "report"}}},
                        }
                    },
                    "outputs": {
                        "parameters": {
                            "summary": {
                                "valueFromParameter": {"producerSubtask": "summarize", "outputParameterKey": "summary"}
                            }
                        }
                    },
                },
            },
        },
        "root": {
            "inputDefinitions": {
                "parameters": {"n": {"parameterType": "NUMBER_INTEGER", "defaultValue": 4.0, "isOptional": True}}
            },
            "outputDefinitions": {"parameters": {"summary": {"parameterType": "STRING"}}},
            "dag": {
                "tasks": {
                    "produce": {
                        "taskInfo": {"name": "produce"},
                        "componentRef": {"name": "comp-produce"},
                        "inputs": {"parameters": {"n": {"componentInputParameter": "n"}}},
                    },
                    "consume": {
                        "taskInfo": {"name": "consume"},
                        "componentRef": {"name": "comp-consume"},
                        "dependentTasks": ["produce"],
                        "inputs": {
                            "artifacts": {
                                "data": {"taskOutputArtifact": {"producerTask": "produce", "outputArtifactKey": "data"}}
                            },
                            "parameters": {
                                "count": {
                                    "taskOutputParameter": {"producerTask": "produce", "outputParameterKey": "count"}
                                },
                                "pipelinechannel--n": {"componentInputParameter": "n"},
                                "tag": {
                                    "runtimeValue": {
                                        "constant": "tag-{{$.inputs.parameters['pipelinechannel--n']}}"
                                    }
                                },
                            },
                        },
                    },
                    "wrap": {
                        "taskInfo": {"name": "wrap"},
                        "componentRef": {"name": "comp-wrap"},
                        "dependentTasks": ["consume"],
                        "inputs": {
                            "artifacts": {
                                "report": {
                                    "taskOutputArtifact": {"producerTask": "consume", "outputArtifactKey": "report"}
                                }
                            }
                        },
                    },
                },
                "outputs": {
                    "parameters": {
                        "summary": {"valueFromParameter": {"producerSubtask": "wrap", "outputParameterKey": "summary"}}
                    }
                },
            },
        },
    }


def failing_pipeline() -> dict[str, Any]:
    """``boom`` fails; ``after`` depends on it and never runs; ``independent`` still succeeds."""
    ok = _exec("print('fine')", [])
    return {
        "pipelineInfo": {"name": "failing"},
        "schemaVersion": "2.1.0",
        "deploymentSpec": {"executors": {"exec-boom": _exec(FAIL, []), "exec-ok": ok}},
        "components": {"comp-boom": {"executorLabel": "exec-boom"}, "comp-ok": {"executorLabel": "exec-ok"}},
        "root": {
            "dag": {
                "tasks": {
                    "boom": {"taskInfo": {"name": "boom"}, "componentRef": {"name": "comp-boom"}},
                    "after": {
                        "taskInfo": {"name": "after"},
                        "componentRef": {"name": "comp-ok"},
                        "dependentTasks": ["boom"],
                    },
                    "independent": {"taskInfo": {"name": "independent"}, "componentRef": {"name": "comp-ok"}},
                }
            }
        },
    }


def parallel_pipeline(seconds: float = 1.0, width: int = 3) -> dict[str, Any]:
    """``width`` independent tasks that each sleep and record when they ran."""
    tasks = {
        f"sleep-{i}": {
            "taskInfo": {"name": f"sleep-{i}"},
            "componentRef": {"name": "comp-sleep"},
            "inputs": {"parameters": {"seconds": {"runtimeValue": {"constant": seconds}}}},
        }
        for i in range(width)
    }
    return {
        "pipelineInfo": {"name": "parallel"},
        "schemaVersion": "2.1.0",
        "deploymentSpec": {
            "executors": {
                "exec-sleep": _exec(
                    SLEEP, ["{{$.inputs.parameters['seconds']}}", "{{$.outputs.parameters['span'].output_file}}"]
                )
            }
        },
        "components": {
            "comp-sleep": {
                "executorLabel": "exec-sleep",
                "inputDefinitions": {"parameters": {"seconds": {"parameterType": "NUMBER_DOUBLE"}}},
                "outputDefinitions": {"parameters": {"span": {"parameterType": "LIST"}}},
            }
        },
        "root": {"dag": {"tasks": tasks}},
    }


WRITE_VALUE = r"""
import os, sys
value, out = sys.argv[1:3]
os.makedirs(os.path.dirname(out), exist_ok=True)
with open(out, "w") as f:
    f.write(value + "!")
"""


def parameter_chain(names: list[str], pipeline: str = "outbox") -> dict[str, Any]:
    """Tasks in a line, each passing a parameter (and no artifact) to the next."""
    tasks: dict[str, Any] = {}
    for i, name in enumerate(names):
        source = (
            {"taskOutputParameter": {"producerTask": names[i - 1], "outputParameterKey": "out"}}
            if i
            else {"componentInputParameter": "salt"}
        )
        tasks[name] = {
            "taskInfo": {"name": name},
            "componentRef": {"name": "comp-write"},
            "inputs": {"parameters": {"value": source}},
            "dependentTasks": [names[i - 1]] if i else [],
            "cachingOptions": {"enableCache": False},
        }
    return {
        "pipelineInfo": {"name": pipeline},
        "schemaVersion": "2.1.0",
        "deploymentSpec": {
            "executors": {
                "exec-write": {
                    "container": {
                        "image": "python:3.11",
                        "command": ["python3", "-c", WRITE_VALUE],
                        "args": [
                            "{{$.inputs.parameters['value']}}",
                            "{{$.outputs.parameters['out'].output_file}}",
                        ],
                    }
                }
            }
        },
        "components": {
            "comp-write": {
                "executorLabel": "exec-write",
                "inputDefinitions": {"parameters": {"value": {"parameterType": "STRING"}}},
                "outputDefinitions": {"parameters": {"out": {"parameterType": "STRING"}}},
            }
        },
        "root": {
            "inputDefinitions": {"parameters": {"salt": {"parameterType": "STRING"}}},
            "dag": {"tasks": tasks},
        },
    }
