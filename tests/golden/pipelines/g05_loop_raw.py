"""dsl.ParallelFor over a raw list of ints, with a parallelism limit."""

from stepwell import dsl


@dsl.component
def square(x: int) -> int:
    return x * x


@dsl.component
def shout(x: int, tag: str) -> str:
    return f"{tag}{x}"


@dsl.pipeline
def loop_raw(tag: str = "n="):
    with dsl.ParallelFor([1, 2, 3], parallelism=2) as item:
        s = square(x=item)
        shout(x=s.output, tag=tag)


TARGET = loop_raw
