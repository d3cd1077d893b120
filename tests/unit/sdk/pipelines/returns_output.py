"""A pipeline whose return value is a pipeline output."""

from stepwell import dsl


@dsl.component
def add(a: int, b: int = 2) -> int:
    """Add two numbers.

    Args:
        a: The first number.
        b: The second number.
    """
    return a + b


@dsl.pipeline
def Sum_Pipeline(x: int, y: int = 1) -> int:
    """Sums things.

    With a longer description.

    Args:
        x: The x.
    """
    first = add(a=x, b=y)
    second = add(a=first.output)
    return add(a=second.output, b=5).output


TARGET = Sum_Pipeline
