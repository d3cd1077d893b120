"""Pipelines both kfp.local and Stepwell run: plain DAGs of lightweight Python components.

Written with ``from kfp import dsl``; ``kfp_vs_stepwell.py`` compiles them with the real
``kfp`` compiler for Stepwell (unchanged KFP IR) and runs the same functions on
``kfp.local``. The ``dsl`` import line is the only thing that changes when the script
falls back to Stepwell's own SDK (``--stepwell-sdk``).
"""

from kfp import dsl


@dsl.component(base_image="python:3.11")
def add(a: int, b: int) -> int:
    return a + b


@dsl.component(base_image="python:3.11")
def noop(x: int) -> int:
    return x


@dsl.component(base_image="python:3.11")
def double(x: int) -> int:
    return 2 * x


@dsl.component(base_image="python:3.11")
def total(a: int, b: int, c: int, d: int) -> int:
    return a + b + c + d


@dsl.pipeline(name="add-3")
def add_three(x: int = 1, y: int = 2) -> int:
    """Three tasks: two independent adds and one that joins them."""
    first = add(a=x, b=y)
    second = add(a=y, b=x)
    return add(a=first.output, b=second.output).output


@dsl.pipeline(name="chain-10")
def chain_ten(x: int = 0) -> int:
    """Ten tasks in a line."""
    task = add(a=x, b=1)
    for _ in range(9):
        task = add(a=task.output, b=1)
    return task.output


@dsl.pipeline(name="diamond-6")
def diamond(x: int = 3) -> int:
    """One task fans out to four, which fan back in to one."""
    top = double(x=x)
    branches = [add(a=top.output, b=i) for i in range(4)]
    return total(
        a=branches[0].output, b=branches[1].output, c=branches[2].output, d=branches[3].output
    ).output


#: name -> (pipeline, arguments, expected output)
PIPELINES = {
    "add-3": (add_three, {"x": 1, "y": 2}, 6),
    "chain-10": (chain_ten, {"x": 0}, 10),
    "diamond-6": (diamond, {"x": 3}, 30),
}
