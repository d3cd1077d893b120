"""compile(..., pipeline_parameters=...) overrides the pipeline's input defaults."""
# ruff: noqa: B006

from stepwell import dsl


@dsl.component
def combine(s: str, i: int, f: float, b: bool, xs: list, d: dict) -> str:
    return f"{s}{i}{f}{b}{xs}{d}"


@dsl.pipeline(name="pipeline-parameters", display_name="Parameters", pipeline_root="/tmp/root")
def pipeline_parameters(
    s: str = "a", i: int = 1, f: float = 1.5, b: bool = False, xs: list = [1], d: dict = {"k": 1}
) -> str:
    return combine(s=s, i=i, f=f, b=b, xs=xs, d=d).output


TARGET = pipeline_parameters
PIPELINE_PARAMETERS = {"s": "z", "i": 7, "f": 2.25, "b": True, "xs": [3, "x"], "d": {"n": [1, 2]}}
