"""A pipeline used as a component inside another pipeline, with NamedTuple outputs."""
# ruff: noqa: UP014

from typing import NamedTuple

from stepwell import dsl
from stepwell.dsl import Dataset, Input, Output


@dsl.component
def make(n: int, out: Output[Dataset]) -> int:
    with open(out.path, "w") as f:
        f.write(str(n))
    return n * 10


@dsl.component
def consume(data: Input[Dataset], value: int) -> str:
    return f"{open(data.path).read()}:{value}"


@dsl.pipeline
def inner(n: int = 1) -> NamedTuple("InnerOut", [("data", Dataset), ("value", int)]):
    m = make(n=n)
    Outputs = NamedTuple("InnerOut", [("data", Dataset), ("value", int)])
    return Outputs(data=m.outputs["out"], value=m.outputs["Output"])


@dsl.pipeline
def outer(n: int = 2) -> str:
    first = inner(n=n)
    second = inner(n=3).set_caching_options(False)
    consume(data=second.outputs["data"], value=second.outputs["value"])
    return consume(data=first.outputs["data"], value=first.outputs["value"]).output


TARGET = outer
