"""@dsl.container_component with dsl.ContainerSpec, input paths and output paths."""

from stepwell import dsl
from stepwell.dsl import Dataset, Input, Output, OutputPath


@dsl.container_component
def make_file(text: str, out: Output[Dataset]):
    return dsl.ContainerSpec(
        image="alpine:3.19",
        command=["sh", "-c", 'mkdir -p "$(dirname "$1")" && echo "$0" > "$1"'],
        args=[text, out.path],
    )


@dsl.container_component
def count_chars(data: Input[Dataset], n: OutputPath(int)):
    return dsl.ContainerSpec(
        image="alpine:3.19",
        command=["sh", "-c"],
        args=['mkdir -p "$(dirname "$1")" && wc -c < "$0" > "$1"', data.path, n],
    )


@dsl.pipeline
def container_component(text: str = "hello") -> int:
    made = make_file(text=text)
    return count_chars(data=made.outputs["out"]).outputs["n"]


TARGET = container_component
