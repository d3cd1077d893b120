"""The older dsl.Condition, nested conditions, strings and booleans."""
# ruff: noqa: E712

from stepwell import dsl


@dsl.component
def flip(seed: int) -> str:
    return "heads" if seed % 2 else "tails"


@dsl.component
def check(text: str) -> bool:
    return text == "heads"


@dsl.component
def report(text: str, flag: bool) -> str:
    return f"{text} {flag}"


@dsl.pipeline
def condition_nested(seed: int = 1, mode: str = "fast"):
    f = flip(seed=seed)
    with dsl.Condition(f.output == "heads"):
        c = check(text=f.output)
        with dsl.Condition(c.output == True):
            report(text=mode, flag=c.output)
        with dsl.Condition(mode != "slow"):
            report(text=f.output, flag=False)


TARGET = condition_nested
