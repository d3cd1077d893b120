"""Nested dsl.ParallelFor loops using both items, and a loop inside a condition."""
# ruff: noqa: B006

from stepwell import dsl


@dsl.component
def pair(a: int, b: str) -> str:
    return f"{a}{b}"


@dsl.component
def count(n: int) -> int:
    return n


@dsl.pipeline
def nested_loops(letters: list = ["x", "y"], n: int = 2):
    with dsl.ParallelFor([1, 2]) as outer, dsl.ParallelFor(letters) as inner:
        pair(a=outer, b=inner)
    c = count(n=n)
    with dsl.If(c.output > 1), dsl.ParallelFor([3, 4], parallelism=1) as i:
        pair(a=i, b="z")


TARGET = nested_loops
