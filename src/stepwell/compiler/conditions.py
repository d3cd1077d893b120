"""``dsl.If`` conditions as the CEL strings KFP writes in ``triggerPolicy.condition``.

``int(inputs.parameter_values['pipelinechannel--t-Output']) > 2``; operands of two
different types are brought to a common one first (string beats bool beats double),
so an integer compared with a double becomes ``double(...)``.
"""

from __future__ import annotations

from typing import Any

from stepwell.dsl.channels import ConditionOperation, PipelineChannel, PipelineParameterChannel

PREFIX = "pipelinechannel--"
_PRIMITIVES = ("STRING", "BOOLEAN", "NUMBER_INTEGER", "NUMBER_DOUBLE")


def _type_of(operand: Any) -> str:
    if isinstance(operand, PipelineChannel):
        if not isinstance(operand, PipelineParameterChannel) or (
            operand.parameter_type not in _PRIMITIVES
        ):
            raise ValueError(
                f"a condition can only compare str, int, float or bool values; "
                f"{PREFIX}{operand.full_name} is {operand.type_name}"
            )
        return operand.parameter_type
    if isinstance(operand, bool):
        return "BOOLEAN"
    if isinstance(operand, int):
        return "NUMBER_INTEGER"
    if isinstance(operand, float):
        return "NUMBER_DOUBLE"
    if isinstance(operand, str):
        return "STRING"
    raise ValueError(f"a condition cannot compare {operand!r}; use str, int, float or bool")


def _common_type(types: set[str]) -> str:
    if len(types) == 1:
        return next(iter(types))
    for winner in ("STRING", "BOOLEAN", "NUMBER_DOUBLE"):
        if winner in types:
            return winner
    raise ValueError(f"cannot compare values of types {sorted(types)}")


def _operand(operand: Any, common: str) -> str:
    kind = _type_of(operand)
    if isinstance(operand, PipelineChannel):
        text = f"inputs.parameter_values['{PREFIX}{operand.full_name}']"
        if kind == "NUMBER_INTEGER":
            text = f"int({text})"
    elif isinstance(operand, str):
        text = f"'{operand}'"
    elif isinstance(operand, bool):
        text = str(operand).lower()
    else:
        text = str(operand)
    if kind != common:
        if common == "STRING":
            text = f"'{text}'"
        elif common == "BOOLEAN":
            text = "true" if int(text) == 0 else "false"  # KFP's own (odd) mapping
        else:
            text = f"double({text})"
    return text


def condition_to_cel(operation: ConditionOperation) -> str:
    """One comparison as CEL."""
    common = _common_type({_type_of(operation.left), _type_of(operation.right)})
    text = (
        f"{_operand(operation.left, common)} {operation.operator} "
        f"{_operand(operation.right, common)}"
    )
    return f"!({text})" if operation.negate else text


def conditions_to_cel(operations: list[ConditionOperation]) -> str:
    """Several comparisons joined with ``&&``."""
    return " && ".join(condition_to_cel(op) for op in operations)
