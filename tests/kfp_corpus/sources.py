"""KFP pipeline sources for the corpus, written against the real ``kfp`` 2.17.3 DSL.

Each ``build_*`` function returns a pipeline function; the tests compile it with
``kfp.compiler`` and run the YAML on Stepwell unchanged. Components are plain KFP
lightweight Python components (their source travels inside the compiled spec) or KFP
container components.
"""

# ruff: noqa: UP006, UP035, RUF013
# No "from __future__ import annotations": kfp reads the annotations as types.


from typing import Any, List, NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Input, Output

IMAGE = "python:3.11"


# ----- components ---------------------------------------------------------------------


@dsl.component(base_image=IMAGE, packages_to_install=["packaging"])
def add(a: int, b: int) -> int:
    return a + b


@dsl.component(base_image=IMAGE)
def double(x: int) -> int:
    return 2 * x


@dsl.component(base_image=IMAGE)
def describe(xs: list, cfg: dict, n: int, ratio: float) -> str:
    # Whole numbers reach user code as int, inside lists and structs too.
    assert all(isinstance(x, int) for x in xs), xs
    assert isinstance(cfg["k"], int) and isinstance(cfg["nested"][0], int), cfg
    assert isinstance(n, int), n
    return f"{sum(xs)}:{cfg['k']}:{n}:{ratio}"


@dsl.component(base_image=IMAGE)
def make_data(rows: int, data: Output[Dataset]) -> str:
    with open(data.path, "w") as f:
        f.write("\n".join(str(i) for i in range(rows)))
    data.metadata["rows"] = rows
    return data.uri


@dsl.component(base_image=IMAGE)
def sum_data(data: Input[Dataset]) -> int:
    with open(data.path) as f:
        total = sum(int(line) for line in f if line.strip())
    assert data.metadata.get("rows", 0) >= 0
    return total


@dsl.component(base_image=IMAGE)
def echo(msg: str) -> str:
    print("echo:", msg)
    return msg


@dsl.component(base_image=IMAGE)
def flip(value: str) -> str:
    return value


@dsl.component(base_image=IMAGE)
def total(values: list) -> int:
    assert all(isinstance(v, int) for v in values), values
    return sum(values)


@dsl.component(base_image=IMAGE)
def join_texts(values: list) -> str:
    return ",".join(str(v) for v in values)


@dsl.component(base_image=IMAGE)
def write_item(item: int, out: Output[Dataset]) -> None:
    with open(out.path, "w") as f:
        f.write(str(item))


@dsl.component(base_image=IMAGE)
def read_all(items: Input[List[Dataset]]) -> str:
    parts = []
    for artifact in items:
        with open(artifact.path) as f:
            parts.append(f.read())
    return "-".join(parts)


@dsl.component(base_image=IMAGE)
def fail(msg: str) -> None:
    raise RuntimeError(msg)


@dsl.component(base_image=IMAGE)
def report(status: dsl.PipelineTaskFinalStatus) -> str:
    return f"{status.state}:{status.pipeline_task_name}"


@dsl.component(base_image=IMAGE)
def split(x: int) -> NamedTuple("Parts", [("half", int), ("label", str)]):  # type: ignore[misc]
    from collections import namedtuple

    return namedtuple("Parts", ["half", "label"])(x // 2, f"n{x}")


@dsl.component(base_image=IMAGE)
def flaky(marker: str) -> str:
    import os

    if not os.path.exists(marker):
        with open(marker, "w") as f:
            f.write("1")
        raise RuntimeError("first attempt fails")
    return "ok"


@dsl.component(base_image=IMAGE)
def needs_file(path: str) -> str:
    with open(path) as f:
        return f.read()


@dsl.component(base_image=IMAGE)
def sleep(seconds: float) -> str:
    import time

    time.sleep(seconds)
    return "slept"


@dsl.component(base_image=IMAGE)
def count_calls(path: str, x: int) -> int:
    with open(path, "a") as f:
        f.write("x\n")
    return x + 1


@dsl.container_component
def shell_concat(name: str, out: dsl.OutputPath(str), opt: str = None):  # type: ignore[assignment]
    return dsl.ContainerSpec(
        image="alpine:3.19",
        command=["sh", "-c"],
        args=[
            dsl.ConcatPlaceholder(
                [
                    'mkdir -p "$(dirname "$0")" && printf "%s|%s|%s|%s" ',
                    '"hello-',
                    name,
                    '" ',
                    dsl.IfPresentPlaceholder(
                        input_name="opt", then=dsl.ConcatPlaceholder(['"opt=', opt, '"']), else_='"no-opt"'
                    ),
                    ' "',
                    dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
                    '" "',
                    dsl.PIPELINE_TASK_NAME_PLACEHOLDER,
                    '" > "$0"',
                ]
            ),
            out,
        ],
    )


# ----- pipelines ----------------------------------------------------------------------


def build_lightweight() -> Any:
    @dsl.pipeline(name="corpus-lightweight")
    def pipeline(n: int = 3, xs: list = [1, 2, 3], cfg: dict = {"k": 4, "nested": [5]}) -> str:  # noqa: B006
        a = add(a=n, b=2)
        d = describe(xs=xs, cfg=cfg, n=a.output, ratio=0.5)
        data = make_data(rows=a.output)
        s = sum_data(data=data.outputs["data"])
        parts = split(x=s.output)
        return echo(msg=f"{d.output}/{s.output}/{parts.outputs['half']}/{parts.outputs['label']}").output

    return pipeline


def build_conditions() -> Any:
    @dsl.pipeline(name="corpus-conditions")
    def pipeline(n: int = 3, word: str = "heads", flag: bool = True, ratio: float = 2.5) -> str:
        a = add(a=n, b=1)
        with dsl.If(a.output > 5, name="big"):
            big = echo(msg="big")
        with dsl.Elif(a.output == 4):
            four = echo(msg="four")
        with dsl.Else():
            other = echo(msg="other")
        chosen = dsl.OneOf(big.output, four.output, other.output)
        final = flip(value=chosen)
        with dsl.If(word == "heads"), dsl.If(flag == True):  # noqa: E712
            echo(msg="nested-true").set_display_name("nested")
        with dsl.If(ratio >= 3.0):
            echo(msg="never").set_display_name("ratio-check")
        return final.output

    return pipeline


def build_loops() -> Any:
    @dsl.pipeline(name="corpus-loops")
    def pipeline(xs: list = [1, 2, 3], rows: list = [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]) -> str:  # noqa: B006
        base = add(a=10, b=0)
        with dsl.ParallelFor([1, 2, 3, 4], parallelism=2) as item:
            d = double(x=item)
            w = write_item(item=item)
        with dsl.ParallelFor(xs) as x:
            plus = add(a=x, b=base.output)
        with dsl.ParallelFor(rows) as row:
            labelled = echo(msg=row.b)
            add(a=row.a, b=1).set_display_name("row-a")
        with dsl.ParallelFor([[1, 2], [3]]) as pair, dsl.ParallelFor(pair) as inner:
            double(x=inner).set_display_name("inner-double")
        doubled = total(values=dsl.Collected(d.output))
        added = join_texts(values=dsl.Collected(plus.output))
        labels = join_texts(values=dsl.Collected(labelled.output)).set_display_name("labels")
        files = read_all(items=dsl.Collected(w.outputs["out"]))
        return echo(msg=f"{doubled.output}|{added.output}|{labels.output}|{files.output}").output

    return pipeline


def build_exit_handler() -> Any:
    @dsl.pipeline(name="corpus-exit")
    def pipeline(msg: str = "boom"):
        final = report()
        with dsl.ExitHandler(final, name="guarded"):
            first = echo(msg="first")
            failing = fail(msg=msg).after(first)
            echo(msg="cleanup").after(failing).ignore_upstream_failure()
            echo(msg="never-runs").after(failing)

    return pipeline


def build_nested() -> Any:
    @dsl.pipeline(name="inner")
    def inner(x: int) -> int:
        a = add(a=x, b=1)
        return double(x=a.output).output

    @dsl.pipeline(name="corpus-nested")
    def pipeline(x: int = 4, uri: str = "") -> int:
        first = inner(x=x)
        second = inner(x=first.output)
        imported = dsl.importer(artifact_uri=uri, artifact_class=Dataset, reimport=False)
        counted = sum_data(data=imported.output)
        return add(a=second.output, b=counted.output).output

    return pipeline


def build_container() -> Any:
    @dsl.pipeline(name="corpus-container")
    def pipeline(name: str = "world") -> str:
        with_opt = shell_concat(name=name, opt="yes")
        without = shell_concat(name=f"{name}-2").set_display_name("no-opt")
        return echo(msg=f"{with_opt.outputs['out']}#{without.outputs['out']}").output

    return pipeline


def build_cached() -> Any:
    @dsl.pipeline(name="corpus-cached")
    def pipeline(path: str, x: int = 1) -> int:
        first = count_calls(path=path, x=x)
        data = make_data(rows=first.output)
        s = sum_data(data=data.outputs["data"])
        uncached = count_calls(path=path, x=s.output).set_caching_options(False)
        return uncached.output

    return pipeline


def build_retry() -> Any:
    @dsl.pipeline(name="corpus-retry")
    def pipeline(marker: str) -> str:
        return flaky(marker=marker).set_retry(num_retries=2, backoff_duration="1s", backoff_factor=1.0).output

    return pipeline


def build_resumable() -> Any:
    @dsl.pipeline(name="corpus-resumable")
    def pipeline(path: str, calls: str) -> str:
        first = count_calls(path=calls, x=1).set_caching_options(False)
        text = needs_file(path=path).after(first).set_caching_options(False)
        return echo(msg=text.output).set_caching_options(False).output

    return pipeline


def build_sleepy() -> Any:
    @dsl.pipeline(name="corpus-sleepy")
    def pipeline(seconds: float = 30.0):
        final = report()
        with dsl.ExitHandler(final):
            sleep(seconds=seconds).set_caching_options(False)

    return pipeline
