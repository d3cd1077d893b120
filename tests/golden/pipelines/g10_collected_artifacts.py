"""dsl.Collected over artifacts feeds an Input[List[Dataset]]; lists of artifacts."""
# ruff: noqa: UP006, UP035

from typing import List

from stepwell import dsl
from stepwell.dsl import Dataset, Input, Output


@dsl.component
def write(text: str, out: Output[Dataset]):
    with open(out.path, "w") as f:
        f.write(text)


@dsl.component
def join(parts: Input[List[Dataset]]) -> str:
    return "".join(open(p.path).read() for p in parts)


@dsl.pipeline
def collected_artifacts() -> str:
    with dsl.ParallelFor(["a", "b", "c"]) as t:
        w = write(text=t)
    return join(parts=dsl.Collected(w.outputs["out"])).output


TARGET = collected_artifacts
