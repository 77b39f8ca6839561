"""Agent harnesses, registered by name and imported lazily."""

from __future__ import annotations

import importlib
from typing import Any

from hud_ray.agents.base import Agent
from hud_ray.errors import ConfigError
from hud_ray.types import AgentSpec

#: name -> "module:Class". Heavy provider SDKs import only when their agent is built.
AGENTS: dict[str, str] = {
    "oracle": "hud_ray.agents.scripted:OracleAgent",
    "nop": "hud_ray.agents.scripted:NopAgent",
    "claude": "hud_ray.agents.claude:ClaudeAgent",
    "openai": "hud_ray.agents.openai:OpenAIAgent",
    "openai_compatible": "hud_ray.agents.openai_compatible:OpenAICompatibleAgent",
    "gemini": "hud_ray.agents.gemini:GeminiAgent",
}


def agent_names() -> list[str]:
    return sorted(AGENTS)


def agent_class(name: str) -> type[Agent]:
    try:
        target = AGENTS[name]
    except KeyError:
        raise ConfigError(f"unknown agent {name!r}; choose one of: "
                          f"{', '.join(agent_names())}") from None
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"agent {name!r} needs a missing dependency ({exc.name}); "
                          "install hud-ray with the matching extra") from None
    return getattr(module, attr)


def create_agent(spec: AgentSpec) -> Agent:
    return agent_class(spec.name)(spec)


def __getattr__(name: str) -> Any:
    if name in ("validate_agent", "AgentSettings"):
        from hud_ray.agents import settings

        return getattr(settings, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["AGENTS", "Agent", "AgentSettings", "agent_class", "agent_names", "create_agent",
           "validate_agent"]
