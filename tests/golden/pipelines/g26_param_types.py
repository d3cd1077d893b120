"""Every parameter type, with defaults, Optional, lists and dicts, and component images."""
# ruff: noqa: B006, UP006, UP035, UP045

from typing import Dict, List, Optional

from stepwell import dsl


@dsl.component(
    base_image="python:3.12-slim",
    packages_to_install=["six"],
    pip_index_urls=["https://pypi.org/simple"],
)
def everything(
    s: str,
    i: int,
    f: float,
    b: bool,
    xs: List[int],
    d: Dict[str, float],
    maybe: Optional[str] = None,
    n: int = 3,
    ratio: float = 0.25,
    on: bool = False,
    items: list = [1, 2],
    table: dict = {"a": 1.5},
) -> Dict[str, int]:
    """Everything at once.

    Args:
        s: A string.
        i: An integer.
    """
    return {"n": n}


@dsl.component
def lst() -> List[str]:
    return ["a"]


@dsl.pipeline
def param_types(s: str = "s", i: int = 1, maybe: Optional[str] = None):
    everything(s=s, i=i, f=1.0, b=True, xs=[1, 2], d={"a": 1.0}, maybe=maybe)
    everything(s="x", i=2, f=0.5, b=False, xs=[], d={}, n=9, on=True, items=["q"], table={})
    lst()


TARGET = param_types
