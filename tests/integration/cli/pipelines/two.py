from stepwell import dsl


@dsl.component
def hello(name: str) -> str:
    return f"hello {name}"


@dsl.pipeline(name="first-one")
def first(name: str = "a") -> str:
    return hello(name=name).output


@dsl.pipeline(name="second-one")
def second(name: str = "b") -> str:
    return hello(name=name).output
