"""Grade payloads: ``SubScore`` trees and the combined ``EvaluationResult``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class SubScore(BaseModel):
    """One node of a grade breakdown: a measurement in [0, 1] with a weight."""

    name: str
    value: float
    weight: float = 1.0
    children: list[SubScore] | None = None
    info: dict[str, Any] | None = None


class EvaluationResult(BaseModel):
    """A combined grade a template can yield: reward plus weighted subscores."""

    reward: float = 0.0
    done: bool = True
    subscores: list[SubScore] | None = None
    info: dict[str, Any] = Field(default_factory=dict)
    content: str | None = None
    isError: bool = False

    @classmethod
    def from_float(cls, value: float) -> EvaluationResult:
        return cls(reward=float(value))
