"""Accuracy with an honest uncertainty: the Wilson score interval.

Benchmarks here have a few hundred questions, where the normal-approximation interval
is too narrow near 0% or 100% and can leave [0, 1]; Wilson's interval does neither.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Accuracy", "accuracy", "wilson_interval"]


def wilson_interval(correct: int, total: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95% for the default ``z``)."""
    if total <= 0:
        return (float("nan"), float("nan"))
    p = correct / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True)
class Accuracy:
    """``correct`` of ``total`` with its 95% confidence interval."""

    correct: int
    total: int

    @property
    def value(self) -> float:
        return self.correct / self.total if self.total else float("nan")

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.correct, self.total)

    def as_dict(self) -> dict[str, float | int]:
        low, high = self.interval
        return {"accuracy": self.value, "correct": self.correct, "total": self.total,
                "ci95_low": low, "ci95_high": high}

    def __str__(self) -> str:
        low, high = self.interval
        return (f"{self.value:.2%} ({self.correct}/{self.total}), "
                f"95% CI [{low:.2%}, {high:.2%}]")


def accuracy(flags: list[bool]) -> Accuracy:
    return Accuracy(sum(flags), len(flags))
