"""Three steps passing a Dataset artifact and parameters."""

from stepwell import dsl
from stepwell.dsl import Dataset, Input, Metrics, Model, Output


@dsl.component
def make_data(rows: int, data: Output[Dataset], sep: str = ",") -> str:
    """Write a small CSV.

    Args:
        rows: How many rows to write.
        data: The CSV file.
    """
    with open(data.path, "w") as f:
        f.writelines(f"{i}{sep}{i * i}\n" for i in range(rows))
    data.metadata["rows"] = rows
    return sep


@dsl.component(base_image="python:3.12", packages_to_install=["numpy>=1.20"])
def train(data: Input[Dataset], lr: float, model: Output[Model], metrics: Output[Metrics]) -> float:
    with open(data.path) as f:
        n = len(f.readlines())
    with open(model.path, "w") as f:
        f.write(f"lr={lr} n={n}")
    metrics.log_metric("rows", n)
    return lr * n


@dsl.component
def report(score: float, sep: str, label: str = "run") -> str:
    return f"{label}{sep}{score}"


@dsl.pipeline(name="three-step", description="Make, train, report.")
def three_step(rows: int = 10, lr: float = 0.5, label: str = "nightly"):
    made = make_data(rows=rows)
    trained = train(data=made.outputs["data"], lr=lr).set_display_name("Train model")
    report(score=trained.outputs["Output"], sep=made.outputs["Output"], label=label)
    report(score=1.5, sep=";").after(trained).set_caching_options(False)


TARGET = three_step
