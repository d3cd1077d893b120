"""A container component compiled on its own, as kfp compiles a single component."""

from stepwell import dsl
from stepwell.dsl import Dataset, Input, Model, Output


@dsl.container_component
def convert(model: Input[Model], fmt: str, out: Output[Dataset], level: int = 3):
    """Convert a model.

    Args:
        fmt: Target format.
    """
    return dsl.ContainerSpec(
        image="busybox:1.36",
        command=["convert", "--format", fmt, "--level", level],
        args=[model.path, out.path],
    )


TARGET = convert
