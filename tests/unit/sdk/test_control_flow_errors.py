"""Control-flow mistakes fail at compile time with messages that name the fix."""

from __future__ import annotations

import pytest

from stepwell import compiler, components, dsl


@dsl.component
def num() -> int:
    return 1


@dsl.component
def use(x: int) -> int:
    return x


@dsl.component
def take_list(xs: list) -> int:
    return len(xs)


def test_output_from_inside_a_condition_needs_oneof() -> None:
    @dsl.pipeline
    def p():
        n = num()
        with dsl.If(n.output > 1):
            inner = use(x=n.output)
        use(x=inner.output)

    with pytest.raises(ValueError, match=r"inside dsl.If/Elif/Else.*dsl.OneOf"):
        compiler.compile_to_dict(p)


def test_output_from_inside_a_loop_needs_collected() -> None:
    @dsl.pipeline
    def p():
        with dsl.ParallelFor([1, 2]) as i:
            inner = use(x=i)
        use(x=inner.output)

    with pytest.raises(ValueError, match=r"dsl\.Collected"):
        compiler.compile_to_dict(p)


def test_else_without_if_and_oneof_without_else() -> None:
    with pytest.raises(ValueError, match=r"must directly follow a dsl\.If"):

        @dsl.pipeline
        def p():
            with dsl.Else():
                num()

    with pytest.raises(ValueError, match=r"ends with a dsl\.Else"):

        @dsl.pipeline
        def q():
            n = num()
            with dsl.If(n.output > 1):
                a = use(x=1)
            with dsl.Elif(n.output > 0):
                b = use(x=2)
            dsl.OneOf(a.output, b.output)


def test_condition_needs_a_comparison_and_python_if_is_refused() -> None:
    with pytest.raises(TypeError, match="comparison"):

        @dsl.pipeline
        def p():
            with dsl.If(num().output):
                num()

    with pytest.raises(TypeError, match=r"dsl\.If"):

        @dsl.pipeline
        def q():
            if num().output > 1:
                num()


def test_collected_type_mismatch_and_list_input() -> None:
    with pytest.raises(TypeError, match=r"expects NUMBER_INTEGER but got .*LIST"):

        @dsl.pipeline
        def p():
            with dsl.ParallelFor([1, 2]) as i:
                t = use(x=i)
            use(x=dsl.Collected(t.output))

    @dsl.pipeline
    def ok():
        with dsl.ParallelFor([1, 2]) as i:
            t = use(x=i)
        take_list(xs=dsl.Collected(t.output))

    assert compiler.compile_to_dict(ok)["root"]["dag"]["tasks"]["take-list"]["dependentTasks"] == [
        "for-loop-2"
    ]


def test_exit_task_cannot_depend_on_tasks() -> None:
    with pytest.raises(ValueError, match="cannot depend on other tasks"):

        @dsl.pipeline
        def p():
            n = num()
            with dsl.ExitHandler(use(x=n.output)):
                num()


def test_bad_resources_and_retry() -> None:
    with pytest.raises(ValueError, match="invalid CPU"):

        @dsl.pipeline
        def p():
            num().set_cpu_limit("two")

    with pytest.raises(ValueError, match="invalid memory"):

        @dsl.pipeline
        def q():
            num().set_memory_limit("4 gigs")


def test_loaded_component_checks_inputs(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    compiler.Compiler().compile(use, str(path))
    loaded = components.load_component_from_file(str(path))
    assert loaded.interface.inputs["x"].parameter_type == "NUMBER_INTEGER"
    with pytest.raises(TypeError, match="missing required input 'x'"):

        @dsl.pipeline
        def p():
            loaded()

    with pytest.raises(TypeError, match=r"expects int, got str"):

        @dsl.pipeline
        def q():
            loaded(x="1")

    with pytest.raises(ValueError, match="not a KFP v2 component"):
        components.load_component_from_text("name: old\nimplementation: {}\n")


def test_load_component_from_url(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    compiler.Compiler().compile(use, str(path))
    loaded = components.load_component_from_url(path.as_uri())
    assert loaded.name == "use" and dsl.is_component(loaded)
