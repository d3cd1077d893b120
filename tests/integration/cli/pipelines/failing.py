from stepwell import dsl


@dsl.component
def produce(n: int) -> int:
    return n * 2


@dsl.component
def explode(x: int) -> int:
    print(f"about to fail with x={x}")
    raise ValueError(f"boom: cannot handle {x}")


@dsl.component
def after(x: int) -> int:
    return x


@dsl.pipeline(name="failing")
def failing(n: int = 3):
    bad = explode(x=produce(n=n).output)
    after(x=bad.output)
