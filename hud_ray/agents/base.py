"""The harness contract: ``Agent.run(ctx) -> AgentResult``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from hud_ray.types import AgentContext, AgentResult, AgentSpec


class Agent(ABC):
    """An agent loop. One instance serves many concurrent rollouts, so keep
    per-rollout state inside :meth:`run`.

    Raise nothing for things the model did (bad tool JSON, step limit): return an
    :class:`AgentResult` with a ``stop_reason`` and, when it is the agent's fault,
    ``error`` set to an :class:`~hud_ray.errors.AgentError`. Provider failures that
    outlast retries may raise :class:`~hud_ray.errors.ProviderError`; the engine
    records them as retryable ``infra_error`` rows.
    """

    name: ClassVar[str] = "agent"
    needs_model: ClassVar[bool] = False

    def __init__(self, spec: AgentSpec) -> None:
        self.spec = spec

    @property
    def model(self) -> str | None:
        return self.spec.model

    @abstractmethod
    async def run(self, ctx: AgentContext) -> AgentResult: ...

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release clients and connections (called once when the harness shuts down)."""
