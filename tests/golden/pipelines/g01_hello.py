"""One component, one parameter, one returned value."""

from stepwell import dsl


@dsl.component
def hello(name: str) -> str:
    return f"hello {name}"


@dsl.pipeline(name="hello", description="Say hello.")
def hello_pipeline(name: str = "world") -> str:
    return hello(name=name).output


TARGET = hello_pipeline
