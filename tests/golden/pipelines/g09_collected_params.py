"""dsl.Collected gathers a parameter output from every loop iteration."""
# ruff: noqa: B006, UP006, UP035

from typing import List

from stepwell import dsl


@dsl.component
def double(x: int) -> int:
    return 2 * x


@dsl.component
def total(xs: List[int]) -> int:
    return sum(xs)


@dsl.pipeline
def collected_params(xs: list = [1, 2, 3]) -> int:
    with dsl.ParallelFor(xs) as x:
        d = double(x=x)
    return total(xs=dsl.Collected(d.output)).output


TARGET = collected_params
