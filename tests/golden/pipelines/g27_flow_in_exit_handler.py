"""A loop and a condition inside an exit handler, with channels crossing the groups."""

from stepwell import dsl
from stepwell.dsl import PipelineTaskFinalStatus


@dsl.component
def notify(status: PipelineTaskFinalStatus) -> str:
    return status.state


@dsl.component
def produce(n: int) -> int:
    return n


@dsl.component
def use(a: int, b: int) -> int:
    return a + b


@dsl.pipeline
def flow_in_exit_handler(n: int = 3, m: int = 1):
    done = notify()
    with dsl.ExitHandler(done):
        p = produce(n=n)
        with dsl.ParallelFor([1, 2]) as item, dsl.If(p.output >= m):
            use(a=item, b=p.output)
            use(a=m, b=n)


TARGET = flow_in_exit_handler
