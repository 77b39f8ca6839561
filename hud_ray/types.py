"""Values that pass between a sandbox, a harness and the driver."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, Field

from hud_ray.capabilities.base import Capability
from hud_ray.errors import HudRayError

StopReason = Literal["done", "max_steps", "length", "timeout", "error", "refusal"]
Status = Literal["ok", "agent_error", "timeout", "infra_error", "grader_error", "cancelled"]
STATUSES: tuple[str, ...] = ("ok", "agent_error", "timeout", "infra_error", "grader_error",
                             "cancelled")


@dataclass(frozen=True, slots=True)
class Prompt:
    """The first yield of a template, normalised.

    ``messages`` is the chat form (``[{"role": ..., "content": ...}]``); ``text`` is a
    plain rendering for records and text-only agents. ``capabilities`` are what the
    agent may dial for this session (environment-wide plus per-episode bindings).
    """

    session_id: str
    text: str
    messages: list[dict[str, Any]]
    capabilities: list[Capability] = field(default_factory=list)
    has_solution: bool = False

    @staticmethod
    def render(messages: list[dict[str, Any]]) -> str:
        if len(messages) == 1 and isinstance(messages[0].get("content"), str):
            return messages[0]["content"]
        return json.dumps(messages, default=str)


@dataclass(frozen=True, slots=True)
class Grade:
    """The second yield of a template, normalised."""

    reward: float
    subscores: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


class AgentConfig(BaseModel):
    """Knobs every harness understands; other keys pass through to the harness, whose
    typed settings model (:mod:`hud_ray.agents.settings`) accepts or rejects them."""

    model_config = {"extra": "allow"}

    max_steps: int = Field(default=20, ge=1)
    timeout_seconds: float | None = Field(default=None, gt=0)
    #: grade an agent cut off by ``timeout_seconds`` (Harbor's rule: the verifier still
    #: runs) instead of writing a ``timeout`` row
    grade_on_timeout: bool = False
    system_prompt: str | None = None
    max_tokens: int = Field(default=1024, ge=1)
    temperature: float | None = None

    def merged(self, overrides: dict[str, Any] | None) -> AgentConfig:
        if not overrides:
            return self
        return AgentConfig.model_validate({**self.model_dump(), **overrides})


class AgentSpec(BaseModel):
    """Which harness to build, with what model and settings (crosses to harness actors)."""

    name: str
    model: str | None = None
    base_url: str | None = None
    gateway: bool = False
    config: AgentConfig = Field(default_factory=AgentConfig)


@dataclass
class AgentContext:
    """Everything a harness gets for one rollout. It reaches the environment only
    through ``capabilities`` (and ``solve`` for the oracle)."""

    prompt: Prompt
    config: AgentConfig
    task_slug: str = ""
    solve: Callable[[], Awaitable[Any]] | None = None
    #: The result a harness is filling in, set by the harness as it starts, so a
    #: timed-out or cancelled agent phase still records the steps and usage so far.
    partial: AgentResult | None = None

    @property
    def capabilities(self) -> list[Capability]:
        return self.prompt.capabilities


@dataclass
class AgentResult:
    """What a harness returns: the answer plus everything worth recording."""

    answer: str | None
    stop_reason: StopReason = "done"
    steps: list[dict[str, Any]] = field(default_factory=list)
    model: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    call_latencies: list[float] = field(default_factory=list)
    #: seconds to the first streamed token of each model call (streamed runs only)
    first_token_latencies: list[float] = field(default_factory=list)
    prompt_token_ids: list[list[int]] | None = None
    completion_token_ids: list[list[int]] | None = None
    completion_logprobs: list[list[float]] | None = None
    error: HudRayError | None = None

    @property
    def num_steps(self) -> int:
        return sum(1 for s in self.steps if s.get("role") == "assistant")


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data (dict keys as strings, models dumped, other objects as
    their ``str``), for grade info that lands in rows."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if hasattr(value, "model_dump"):
        return jsonable(value.model_dump(mode="json"))
    return str(value)
