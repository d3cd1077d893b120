"""Pipelines for the engine-overhead benchmark: a chain and a fan-out of no-op steps."""

from stepwell import dsl


@dsl.component
def step(x: int) -> int:
    return x + 1


@dsl.pipeline(name="chain-10")
def chain(start: int = 0) -> int:
    task = step(x=start)
    for _ in range(9):
        task = step(x=task.output)
    return task.output


@dsl.pipeline(name="fan-8")
def fan(start: int = 0):
    first = step(x=start)
    for _ in range(8):
        step(x=first.output)
