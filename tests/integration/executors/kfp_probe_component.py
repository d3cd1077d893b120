"""A KFP lightweight component for the executor tests (kfp needs real annotations: no
``from __future__ import annotations`` here)."""

from kfp import dsl


@dsl.component(base_image="python:3.11")
def kfp_probe(report: str) -> str:
    import json
    import os
    import sys

    with open("/proc/self/cmdline", "rb") as f:
        cmdline = f.read().decode().split("\0")
    with open(report, "w") as f:
        json.dump({"pid": os.getpid(), "ppid": os.getppid(), "runtime": os.environ.get("_KFP_RUNTIME"),
                   "cmdline": cmdline, "main": sys.modules["__main__"].__name__}, f)
    return "kfp ok"


@dsl.pipeline(name="kfp-probe")
def kfp_probe_pipeline(report: str) -> str:
    return kfp_probe(report=report).output
