"""A component compiled on its own."""

from typing import NamedTuple

from stepwell import dsl
from stepwell.dsl import Input, Metrics, Model, Output


@dsl.component
def evaluate_model(
    model: Input[Model], threshold: float, metrics: Output[Metrics], tag: str = "v1"
) -> NamedTuple("Outputs", [("passed", bool), ("score", float)]):
    """Evaluate a model.

    Args:
        threshold: Minimum score to pass.

    Returns:
        passed: Whether the score reached the threshold.
    """
    from collections import namedtuple

    metrics.log_metric("score", 0.9)
    return namedtuple("Outputs", ["passed", "score"])(threshold <= 0.9, 0.9)


TARGET = evaluate_model
