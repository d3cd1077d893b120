"""Every parameter type, with defaults and Optional inputs."""

# Written the way kfp users write pipelines: typing.Optional/List/Dict and mutable defaults.
# ruff: noqa: B006, UP006, UP035, UP045

from typing import Dict, List, Optional

from stepwell import dsl
from stepwell.dsl import Artifact, Dataset, Input, Output


@dsl.component
def everything(
    s: str,
    i: int,
    f: float,
    b: bool,
    xs: list,
    cfg: dict,
    maybe: Optional[str] = None,
    n: int = 3,
    ratio: float = 0.25,
    on: bool = False,
    items: List[int] = [1, 2],
    table: Dict[str, float] = {"a": 1.5},
    data: Input[Dataset] = None,
) -> dict:
    return {"s": s}


@dsl.component
def produce(out: Output[Artifact]) -> None:
    with open(out.path, "w") as f:
        f.write("x")


@dsl.pipeline(display_name="Defaults", pipeline_root="/tmp/stepwell-root")
def defaults_pipeline(
    s: str = "hello",
    i: int = 7,
    f: float = 2.0,
    b: bool = True,
    xs: list = ["a", 1],
    cfg: dict = {"k": [1, 2]},
    opt: Optional[int] = None,
) -> Dataset:
    produced = produce()
    everything(s=s, i=i, f=f, b=b, xs=xs, cfg=cfg, data=produced.output)
    everything(s="c", i=1, f=0.5, b=False, xs=[1, 2.5, "x"], cfg={"n": 1}, maybe="yes", on=True)
    last = everything(s=s, i=i, f=f, b=b, xs=xs, cfg=cfg)
    return produce().after(last).output


TARGET = defaults_pipeline
