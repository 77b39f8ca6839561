"""Grade payloads: ``SubScore`` trees and the combined ``EvaluationResult`` (HUD's shapes)."""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field


class SubScore(BaseModel):
    """One node of a grade breakdown: a measurement in [0, 1] with a weight.

    A negative weight is a penalty. ``metadata`` is accepted as an alias of ``info``.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str
    weight: float = 1.0
    value: float = Field(ge=0.0, le=1.0)
    children: list[SubScore] | None = None
    info: dict[str, Any] | None = Field(default=None,
                                        validation_alias=AliasChoices("info", "metadata"))

    @property
    def metadata(self) -> dict[str, Any] | None:
        """Alias of :attr:`info`."""
        return self.info

    @metadata.setter
    def metadata(self, value: dict[str, Any] | None) -> None:
        self.info = value

    @property
    def score(self) -> float:
        """Alias of :attr:`value`."""
        return self.value


class EvaluationResult(BaseModel):
    """A combined grade a template can yield: reward plus weighted subscores.

    Every field (``content``, ``done``, ``isError``, ``info``, the subscore tree with
    weights and children, and extra keys) reaches the rollout record's grade info.
    """

    model_config = ConfigDict(extra="allow")

    reward: float = 0.0
    done: bool = True
    content: str | None = None
    info: dict[str, Any] = Field(default_factory=dict)
    isError: bool = False  # HUD's wire name
    subscores: list[SubScore] | None = None

    @classmethod
    def from_float(cls, value: float) -> EvaluationResult:
        return cls(reward=float(value), done=True)
