"""dsl.OneOf picks the output of whichever branch ran; also returned as a pipeline output."""

from stepwell import dsl
from stepwell.dsl import Dataset, Output


@dsl.component
def coin(seed: int) -> str:
    return "heads" if seed % 2 else "tails"


@dsl.component
def param_a() -> str:
    return "A"


@dsl.component
def param_b() -> str:
    return "B"


@dsl.component
def data_a(out: Output[Dataset]):
    with open(out.path, "w") as f:
        f.write("a")


@dsl.component
def data_b(out: Output[Dataset]):
    with open(out.path, "w") as f:
        f.write("b")


@dsl.component
def show(text: str) -> str:
    return text


@dsl.pipeline
def oneof_pipeline(seed: int = 3) -> str:
    c = coin(seed=seed)
    with dsl.If(c.output == "heads"):
        a = param_a()
        da = data_a()
    with dsl.Else():
        b = param_b()
        db = data_b()
    show(text=dsl.OneOf(a.output, b.output))
    dsl.OneOf(da.outputs["out"], db.outputs["out"])
    with dsl.If(c.output == "heads"):
        x = param_a()
    with dsl.Elif(c.output == "tails"):
        y = param_b()
    with dsl.Else():
        z = param_a()
    return dsl.OneOf(x.output, y.output, z.output)


TARGET = oneof_pipeline
