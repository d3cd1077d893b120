"""Quickstart: a three-step pipeline that passes a Dataset artifact and parameters.

    stepwell run examples/quickstart.py -p rows=20

``make_data`` writes a CSV dataset, ``summarize`` reads it and returns the mean, and
``report`` formats a line from the mean and a threshold.
"""

from stepwell import dsl
from stepwell.dsl import Dataset, Input, Metrics, Output


@dsl.component
def make_data(rows: int, data: Output[Dataset]) -> int:
    """Writes ``rows`` lines of ``i,i*i`` and returns how many it wrote."""
    with open(data.path, "w") as f:
        f.write("x,y\n")
        for i in range(rows):
            f.write(f"{i},{i * i}\n")
    data.metadata["rows"] = rows
    return rows


@dsl.component
def summarize(data: Input[Dataset], metrics: Output[Metrics]) -> float:
    """Reads the dataset and returns the mean of column y."""
    with open(data.path) as f:
        next(f)
        ys = [float(line.split(",")[1]) for line in f if line.strip()]
    mean = sum(ys) / len(ys)
    metrics.log_metric("mean_y", mean)
    metrics.log_metric("count", len(ys))
    return mean


@dsl.component
def report(mean: float, count: int, threshold: float) -> str:
    """Says whether the mean is above the threshold."""
    verdict = "above" if mean > threshold else "not above"
    return f"mean of {count} rows is {mean:.2f}, {verdict} {threshold}"


@dsl.pipeline(name="quickstart", description="Make a dataset, summarize it, report.")
def quickstart(rows: int = 10, threshold: float = 30.0) -> str:
    data = make_data(rows=rows)
    summary = summarize(data=data.outputs["data"])
    return report(mean=summary.outputs["Output"], count=data.outputs["Output"], threshold=threshold).output
