"""A pipeline that takes an artifact as input and returns one."""

from stepwell import dsl
from stepwell.dsl import Artifact, Dataset, Input, Model, Output


@dsl.component
def fit(data: Input[Dataset], anything: Input[Artifact], model: Output[Model], epochs: int = 1):
    with open(model.path, "w") as f:
        f.write(str(epochs))


@dsl.pipeline(name="artifact-input")
def artifact_pipeline(data: Input[Dataset], epochs: int = 2) -> Model:
    first = fit(data=data, anything=data, epochs=epochs)
    return fit(data=data, anything=first.outputs["model"]).outputs["model"]


TARGET = artifact_pipeline
