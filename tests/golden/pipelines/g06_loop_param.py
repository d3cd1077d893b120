"""dsl.ParallelFor over a list pipeline parameter and over a task's list output."""
# ruff: noqa: B006, UP006, UP035

from typing import List

from stepwell import dsl


@dsl.component
def make_list(n: int) -> List[str]:
    return [str(i) for i in range(n)]


@dsl.component
def echo(text: str) -> str:
    return text


@dsl.pipeline
def loop_param(words: list = ["a", "b"], n: int = 2):
    with dsl.ParallelFor(words) as word:
        echo(text=word)
    made = make_list(n=n)
    with dsl.ParallelFor(made.output, parallelism=1) as item:
        echo(text=item)


TARGET = loop_param
