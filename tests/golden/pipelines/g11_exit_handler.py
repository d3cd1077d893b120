"""dsl.ExitHandler with an exit task that reads dsl.PipelineTaskFinalStatus."""

from stepwell import dsl
from stepwell.dsl import PipelineTaskFinalStatus


@dsl.component
def cleanup(status: PipelineTaskFinalStatus, note: str = "done") -> str:
    return f"{status.state} {note}"


@dsl.component
def work(x: int) -> int:
    return x + 1


@dsl.component
def fail_maybe(x: int):
    if x > 100:
        raise RuntimeError("too big")


@dsl.pipeline
def exit_handler(x: int = 1):
    exit_task = cleanup(note="bye")
    with dsl.ExitHandler(exit_task, name="guarded"):
        w = work(x=x)
        fail_maybe(x=w.output)


TARGET = exit_handler
