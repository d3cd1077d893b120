"""components.load_component_from_file with artifacts, used next to a Python component."""

from pathlib import Path

from stepwell import components, dsl
from stepwell.dsl import Dataset, Model, Output

train = components.load_component_from_file(str(Path(__file__).parent / "train_component.yaml"))


@dsl.component
def make(out: Output[Dataset]):
    with open(out.path, "w") as f:
        f.write("data")


@dsl.pipeline
def loaded_file() -> Model:
    m = make()
    train(data=m.outputs["out"], note="first")
    t = train(data=m.outputs["out"], epochs=5)
    return t.outputs["model"]


TARGET = loaded_file
