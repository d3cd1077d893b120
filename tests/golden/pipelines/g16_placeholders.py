"""IfPresentPlaceholder, ConcatPlaceholder, input and output URIs and metadata."""
# ruff: noqa: UP045

from typing import Optional

from stepwell import dsl
from stepwell.dsl import Artifact, Input, Output, OutputPath


@dsl.container_component
def tool(
    name: str,
    data: Input[Artifact],
    out: Output[Artifact],
    summary: OutputPath(str),
    verbose: Optional[bool] = None,
    prefix: str = "p",
):
    return dsl.ContainerSpec(
        image="busybox:1.36",
        command=["echo"],
        args=[
            dsl.ConcatPlaceholder(["--name=", name, "-", prefix]),
            data.uri,
            out.uri,
            out.path,
            summary,
            dsl.IfPresentPlaceholder(
                input_name="verbose",
                then=["--verbose", verbose],
                else_=["--quiet"],
            ),
            dsl.IfPresentPlaceholder(
                input_name="verbose", then=[dsl.ConcatPlaceholder(["v=", verbose])]
            ),
        ],
    )


@dsl.container_component
def produce(out: Output[Artifact]):
    return dsl.ContainerSpec(image="busybox:1.36", command=["touch", out.path])


@dsl.pipeline
def placeholders(name: str = "n"):
    p = produce()
    tool(name=name, data=p.outputs["out"])
    tool(name="x", data=p.outputs["out"], verbose=True, prefix="q")


TARGET = placeholders
