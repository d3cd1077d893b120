"""Lightweight components with OutputPath/InputPath for parameters and artifacts."""

from stepwell import dsl
from stepwell.dsl import InputPath, OutputPath


@dsl.component
def write_text(text: str, out_path: OutputPath("Dataset"), count: OutputPath(int)):
    with open(out_path, "w") as f:
        f.write(text)
    with open(count, "w") as f:
        f.write(str(len(text)))


@dsl.component
def read_text(in_path: InputPath("Dataset"), count: int) -> str:
    with open(in_path) as f:
        return f.read()[:count]


@dsl.pipeline
def path_params(text: str = "abc") -> str:
    w = write_text(text=text)
    return read_text(in_path=w.outputs["out_path"], count=w.outputs["count"]).output


TARGET = path_params
