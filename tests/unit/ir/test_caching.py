from __future__ import annotations

from stepwell.ir import with_caching

SPEC = {
    "root": {"dag": {"tasks": {"a": {"cachingOptions": {"enableCache": True, "cacheKey": "k"}}, "loop": {}}}},
    "components": {
        "comp-inner": {"dag": {"tasks": {"b": {"cachingOptions": {"enableCache": True}}}}},
        "comp-leaf": {"executorLabel": "exec-leaf"},
    },
}


def test_disabling_reaches_nested_dags_and_leaves_the_input_alone() -> None:
    off = with_caching(SPEC, False)
    assert off["root"]["dag"]["tasks"]["a"]["cachingOptions"] == {}
    assert off["components"]["comp-inner"]["dag"]["tasks"]["b"]["cachingOptions"] == {}
    assert SPEC["root"]["dag"]["tasks"]["a"]["cachingOptions"]["enableCache"] is True


def test_enabling_touches_only_tasks_that_carry_caching_options() -> None:
    on = with_caching(with_caching(SPEC, False), True)
    assert on["root"]["dag"]["tasks"]["a"]["cachingOptions"] == {"enableCache": True}
    assert on["components"]["comp-inner"]["dag"]["tasks"]["b"]["cachingOptions"] == {"enableCache": True}
    assert "cachingOptions" not in on["root"]["dag"]["tasks"]["loop"]


def test_wrapped_spec_with_platform_spec() -> None:
    wrapped = {"pipeline_spec": SPEC, "platform_spec": {"platforms": {}}}
    off = with_caching(wrapped, False)
    assert off["pipeline_spec"]["root"]["dag"]["tasks"]["a"]["cachingOptions"] == {}
    assert off["platform_spec"] == {"platforms": {}}
