"""A pipeline returning a NamedTuple of a parameter and an artifact."""
# ruff: noqa: UP014

from typing import NamedTuple

from stepwell import dsl
from stepwell.dsl import Model, Output


@dsl.component
def fit(epochs: int, model: Output[Model]) -> float:
    with open(model.path, "w") as f:
        f.write(str(epochs))
    return 0.5 * epochs


@dsl.pipeline
def pipeline_outputs(
    epochs: int = 3,
) -> NamedTuple("Outputs", [("score", float), ("model", Model)]):
    t = fit(epochs=epochs)
    Outputs = NamedTuple("Outputs", [("score", float), ("model", Model)])
    return Outputs(score=t.outputs["Output"], model=t.outputs["model"])


TARGET = pipeline_outputs
