"""ignore_upstream_failure() lets a cleanup task run after a failed upstream."""

from stepwell import dsl


@dsl.component
def might_fail(x: int) -> str:
    if x > 1:
        raise RuntimeError("boom")
    return "ok"


@dsl.component
def always(msg: str = "cleanup") -> str:
    return msg


@dsl.pipeline
def ignore_failure(x: int = 0):
    t = might_fail(x=x)
    always(msg="after").after(t).ignore_upstream_failure()
    always(msg=t.output).ignore_upstream_failure()


TARGET = ignore_failure
