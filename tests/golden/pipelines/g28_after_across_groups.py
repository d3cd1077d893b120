"""Dependencies (.after and data) between tasks in different control-flow groups."""

from stepwell import dsl


@dsl.component
def step(x: int) -> int:
    return x


@dsl.pipeline
def after_across_groups(x: int = 1):
    first = step(x=x)
    with dsl.If(x > 0):
        inside = step(x=first.output)
        with dsl.If(x > 1):
            deeper = step(x=inside.output)
    step(x=5).after(first)
    with dsl.ParallelFor([1, 2]) as i:
        step(x=i).after(first)
    last = step(x=9)
    with dsl.If(x == 3):
        step(x=last.output)
    del deeper


TARGET = after_across_groups
