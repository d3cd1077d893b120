"""Mistakes in pipeline code are reported clearly, naming the component and input."""

from __future__ import annotations

import pytest

from stepwell import compiler, dsl
from stepwell.dsl import Dataset, Input, Model, Output


@dsl.component
def add(a: int, b: int = 1) -> int:
    return a + b


@dsl.component
def read(data: Input[Dataset]) -> str:
    return data.path


@dsl.component
def write(model: Output[Model]) -> None:
    pass


@dsl.component
def noop(x: int) -> None:
    pass


def test_positional_arguments_are_rejected() -> None:
    with pytest.raises(
        TypeError, match=r"'add' takes keyword arguments only.*add\(a=\.\.\., b=\.\.\.\)"
    ):

        @dsl.pipeline
        def p(x: int):
            add(x)


def test_unknown_input_is_rejected() -> None:
    with pytest.raises(
        TypeError, match=r"component 'add' got unexpected input\(s\) 'c'; its inputs are: a, b"
    ):

        @dsl.pipeline
        def p(x: int):
            add(a=x, c=2)


def test_missing_required_input_is_rejected() -> None:
    with pytest.raises(TypeError, match="component 'add' is missing required input 'a'"):

        @dsl.pipeline
        def p():
            add(b=2)


def test_wrong_constant_type_is_rejected() -> None:
    with pytest.raises(TypeError, match=r"component 'add': input 'a' expects int, got str"):

        @dsl.pipeline
        def p():
            add(a="three")


def test_bool_is_not_an_int() -> None:
    with pytest.raises(TypeError, match="input 'a' expects int, got bool"):

        @dsl.pipeline
        def p():
            add(a=True)


def test_parameter_channel_type_mismatch() -> None:
    with pytest.raises(TypeError, match=r"input 'a' expects NUMBER_INTEGER .* type STRING"):

        @dsl.pipeline
        def p(s: str):
            add(a=s)


def test_artifact_input_needs_an_artifact() -> None:
    with pytest.raises(TypeError, match=r"component 'read': input 'data' is an artifact"):

        @dsl.pipeline
        def p():
            read(data="/tmp/x")

    with pytest.raises(TypeError, match=r"expects system.Dataset, got .*system.Model"):

        @dsl.pipeline
        def q():
            read(data=write().output)


def test_output_of_a_task_without_or_with_several_outputs() -> None:
    with pytest.raises(AttributeError, match="has no outputs"):

        @dsl.pipeline
        def p():
            add(a=noop(x=1).output)

    @dsl.component
    def two(m: Output[Model]) -> int:
        return 1

    with pytest.raises(AttributeError, match=r"several outputs \(m, Output\)"):

        @dsl.pipeline
        def q():
            add(a=two().output)


def test_calling_outside_a_pipeline() -> None:
    with pytest.raises(RuntimeError, match="outside a pipeline"):
        add(a=1)


def test_passing_a_task_instead_of_its_output() -> None:
    with pytest.raises(TypeError, match=r"pass one of its outputs"):

        @dsl.pipeline
        def p():
            add(a=add(a=1))


def test_unsupported_annotations() -> None:
    with pytest.raises(TypeError, match="input 'x' has no type annotation"):

        @dsl.component
        def f(x):
            pass

    with pytest.raises(TypeError, match="unsupported type"):

        @dsl.component
        def g(x: set):
            pass


def test_pipeline_output_must_be_a_task_output() -> None:
    with pytest.raises(TypeError, match="not a pipeline input"):

        @dsl.pipeline
        def p(x: int) -> int:
            add(a=x)
            return x

    with pytest.raises(TypeError, match="declared as str"):

        @dsl.pipeline
        def q(x: int) -> str:
            return add(a=x).output


def test_empty_pipeline_does_not_compile() -> None:
    @dsl.pipeline
    def empty():
        pass

    with pytest.raises(ValueError, match="has no tasks"):
        compiler.compile_to_dict(empty)
