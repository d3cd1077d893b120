"""f-string parameters built from task outputs and pipeline inputs."""

from stepwell import dsl


@dsl.component
def word(w: str) -> str:
    return w


@dsl.component
def show(text: str) -> str:
    return text


@dsl.pipeline
def fstrings(name: str = "x", n: int = 2):
    w = word(w="hi")
    show(text=f"{w.output}-{name}-{n}")
    show(text=f"plain-{name}")
    with dsl.ParallelFor(["a", "b"]) as item:
        show(text=f"{item}/{w.output}")


TARGET = fstrings
