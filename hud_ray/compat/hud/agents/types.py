"""``hud.agents.types`` config models, lenient: hud-ray reads the keys it knows
(``max_steps``, ``system_prompt``, ``max_tokens``, ``temperature``, ``timeout_seconds``)
from a task's ``agent_config`` and passes the rest to the harness."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class AgentConfig(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    timeout_seconds: float | None = Field(default=None, gt=0)
    model_name: str = "Agent"
    model: str = "unknown"
    gateway: bool = False


class ToolAgentConfig(AgentConfig):
    max_steps: int = 10
    system_prompt: str | None = None


class ClaudeConfig(ToolAgentConfig):
    model_name: str = "Claude"


class OpenAIConfig(ToolAgentConfig):
    model_name: str = "OpenAI"


class OpenAIChatConfig(ToolAgentConfig):
    model_name: str = "OpenAI Chat"


__all__ = ["AgentConfig", "ClaudeConfig", "OpenAIChatConfig", "OpenAIConfig",
           "ToolAgentConfig"]
