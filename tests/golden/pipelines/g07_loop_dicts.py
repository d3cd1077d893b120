"""dsl.ParallelFor over dict items, reading fields with item.key."""
# ruff: noqa: B006

from stepwell import dsl


@dsl.component
def train(lr: float, layers: float) -> str:
    return f"{lr}-{layers}"


@dsl.component
def label(name: str) -> str:
    return name


@dsl.pipeline
def loop_dicts(configs: list = [{"name": "x", "lr": 0.1}]):
    with dsl.ParallelFor([{"lr": 0.1, "layers": 2}, {"lr": 0.01, "layers": 4}]) as cfg:
        train(lr=cfg.lr, layers=cfg.layers)
    with dsl.ParallelFor(configs) as c:
        label(name=c.name)


TARGET = loop_dicts
