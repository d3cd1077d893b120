"""The CEL subset KFP emits, and KFP's cache fingerprint."""

from __future__ import annotations

import hashlib

import pytest

from stepwell.ir.cache_key import fingerprint_for_task, go_json
from stepwell.ir.cel import CelError, evaluate, evaluate_condition, select

PV = {"pipelinechannel--add-Output": 5, "n": 2.5, "flag": True, "s": "heads"}


@pytest.mark.parametrize(
    ("expr", "want"),
    [
        ("int(inputs.parameter_values['pipelinechannel--add-Output']) > 2", True),
        ("inputs.parameter_values['n'] >= double(2)", True),
        ("!(inputs.parameter_values['s'] == 'heads') && inputs.parameter_values['flag'] == true", False),
        ("!(int(inputs.parameter_values['pipelinechannel--add-Output']) > 5) && !(inputs.parameter_values['n'] < 1.0)", True),
        ("inputs.parameter_values['s'] == 'heads' || 1 / 0 == 1", True),
    ],
)
def test_conditions(expr: str, want: bool) -> None:
    assert evaluate_condition(expr, PV) is want


def test_selectors_and_errors() -> None:
    assert select('parseJson(string_value)["a"]', {"a": 3}) == 3
    assert select('parseJson(string_value)["b"]', '{"b": "x"}') == "x"
    assert evaluate("[1, 2].size() + size('ab')", {}) == 4
    with pytest.raises(CelError):
        evaluate_condition("inputs.parameter_values['missing'] == 1", PV)
    with pytest.raises(CelError):
        evaluate_condition("1 + 1", PV)


def test_fingerprint_custom_key_and_go_json() -> None:
    spec = {"componentRef": {"name": "comp-a"}, "cachingOptions": {"enableCache": True, "cacheKey": "k"}}
    assert fingerprint_for_task(spec, {}, {}, {}) == hashlib.sha256(b"comp-a\x00k").hexdigest()
    assert go_json({"b": 1.0, "a": "<&>"}) == '{"a":"\\u003c\\u0026\\u003e","b":1}'
    component = {"outputDefinitions": {"parameters": {"Output": {"parameterType": "NUMBER_INTEGER"}}}}
    executor = {"container": {"image": "python:3.11", "command": ["python3"], "args": ["{{$}}"]}}
    base = fingerprint_for_task({"componentRef": {"name": "c"}}, component, executor, {"parameters": {"a": 1}})
    assert base == fingerprint_for_task({"componentRef": {"name": "c"}}, component, executor, {"parameters": {"a": 1.0}})
    assert base != fingerprint_for_task({"componentRef": {"name": "c"}}, component, executor, {"parameters": {"a": 2}})
