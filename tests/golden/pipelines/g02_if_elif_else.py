"""dsl.If / dsl.Elif / dsl.Else on an integer task output and a float parameter."""

from stepwell import dsl


@dsl.component
def roll(sides: int) -> int:
    return sides // 2


@dsl.component
def say(msg: str) -> str:
    return msg


@dsl.pipeline
def if_elif_else(sides: int = 6, ratio: float = 0.5):
    r = roll(sides=sides)
    with dsl.If(r.output > 4, name="big"):
        say(msg="big")
    with dsl.Elif(r.output == 3):
        say(msg="three")
    with dsl.Elif(ratio >= 2):
        say(msg="ratio")
    with dsl.Else():
        say(msg="small")


TARGET = if_elif_else
