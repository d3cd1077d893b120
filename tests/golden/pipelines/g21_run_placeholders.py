"""dsl.PIPELINE_JOB_NAME_PLACEHOLDER and the other run placeholders as parameters."""

from stepwell import dsl


@dsl.component
def show(a: str, b: str, c: str, d: str, e: str, f: str, g: str, h: str) -> str:
    return ",".join([a, b, c, d, e, f, g, h])


@dsl.pipeline
def run_placeholders():
    show(
        a=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
        b=dsl.PIPELINE_JOB_RESOURCE_NAME_PLACEHOLDER,
        c=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        d=dsl.PIPELINE_TASK_NAME_PLACEHOLDER,
        e=dsl.PIPELINE_TASK_ID_PLACEHOLDER,
        f=dsl.PIPELINE_ROOT_PLACEHOLDER,
        g=dsl.PIPELINE_JOB_CREATE_TIME_UTC_PLACEHOLDER,
        h=dsl.PIPELINE_JOB_SCHEDULE_TIME_UTC_PLACEHOLDER,
    )


TARGET = run_placeholders
