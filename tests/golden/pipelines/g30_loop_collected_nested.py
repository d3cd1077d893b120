"""Collected from nested loops, OneOf over artifacts, and pipeline outputs from loops."""
# ruff: noqa: UP006, UP035

from typing import List

from stepwell import dsl


@dsl.component
def emit(a: int, b: int) -> int:
    return a * b


@dsl.component
def flat(xs: List[List[int]]) -> int:
    return sum(sum(x) for x in xs)


@dsl.pipeline
def loop_collected_nested() -> List[int]:
    with dsl.ParallelFor([1, 2]) as a, dsl.ParallelFor([3, 4]) as b:
        e = emit(a=a, b=b)
    flat(xs=dsl.Collected(e.output))
    with dsl.ParallelFor([5, 6]) as c:
        f = emit(a=c, b=c)
    return dsl.Collected(f.output)


TARGET = loop_collected_nested
