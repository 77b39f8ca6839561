"""Typed agent settings: what each harness accepts, checked before a run starts.

Settings arrive as a loose mapping (``-c key=value``, ``agent_config``, per-task
overrides). :func:`validate_agent` checks them against the harness's settings model
(unknown keys are errors, so ``max_step`` is caught) and against what the model and
the installed SDK take, and checks that the harness can find an API key. Every
problem is a one-line :class:`~hud_ray.errors.ConfigError`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hud_ray.errors import ConfigError
from hud_ray.types import AgentConfig, AgentSpec

#: OpenAI reasoning families: they take ``max_completion_tokens`` and reasoning effort,
#: and reject ``temperature`` / ``top_p``.
_OPENAI_REASONING = re.compile(r"^(?:[\w.-]+/)?(?:o\d|gpt-5)", re.IGNORECASE)

Effort = Literal["none", "minimal", "low", "medium", "high", "xhigh"]


def is_openai_reasoning_model(model: str | None) -> bool:
    """True for the o1/o3/o4 and gpt-5 families (optionally behind a ``vendor/`` prefix)."""
    return bool(model and _OPENAI_REASONING.match(model))


class AgentSettings(BaseModel):
    """Settings every harness accepts (the scripted ``oracle`` and ``nop`` ignore them)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_steps: int = Field(20, ge=1, description="model turns before the rollout stops")
    timeout_seconds: float | None = Field(None, gt=0, description="agent-phase deadline")
    grade_on_timeout: bool = Field(False, description="grade an agent cut off by "
                                   "timeout_seconds (Harbor's rule) instead of a timeout row")
    system_prompt: str | None = Field(None, description="prepended system text")
    max_tokens: int = Field(1024, ge=1, description="output-token cap per model call")
    temperature: float | None = Field(None, ge=0, le=2, description="sampling temperature")
    think_tool: bool = Field(False, description="offer the no-op `think` tool")
    seed: int | None = Field(None, description="sampling seed (a sweep's seed axis): sent as "
                             "`seed` by openai_compatible; recorded only elsewhere")


class ModelSettings(AgentSettings):
    """Settings of every model harness."""

    protocol: ClassVar[str] = ""

    top_p: float | None = Field(None, gt=0, le=1, description="nucleus sampling")
    stream: bool = Field(False, description="stream responses (records time to first token)")
    max_attempts: int = Field(6, ge=1, description="tries per model call (429/5xx/cut)")
    backoff_base: float = Field(0.5, ge=0, description="first retry back-off, seconds")
    backoff_cap: float = Field(30.0, ge=0, description="longest retry back-off, seconds")
    request_timeout: float = Field(600.0, gt=0, description="seconds per model call")
    connections_per_client: int = Field(2, ge=1, description="HTTP pool per conversation")
    api_key_env: str | None = Field(None, description="env var holding the API key")
    rpm: float | None = Field(None, gt=0, description="requests/minute, shared cluster-wide")
    tpm: float | None = Field(None, gt=0, description="tokens/minute, shared cluster-wide")
    burst: float | None = Field(None, gt=0, description="requests allowed in a burst (rpm)")


class ClaudeSettings(ModelSettings):
    """``claude`` (Anthropic Messages)."""

    protocol: ClassVar[str] = "anthropic"

    thinking_budget: int | None = Field(
        None, ge=1024, description="extended thinking: budget_tokens (< max_tokens)")
    adaptive_thinking: bool = Field(
        False, description="adaptive thinking (thinking.type=adaptive; newer models)")

    @property
    def thinking(self) -> bool:
        return self.thinking_budget is not None or self.adaptive_thinking


class OpenAISettings(ModelSettings):
    """``openai`` (Responses API)."""

    protocol: ClassVar[str] = "responses"

    reasoning_effort: Effort | None = Field(None, description="reasoning.effort")
    reasoning_summary: Literal["auto", "concise", "detailed"] | None = Field(
        None, description="reasoning.summary")
    store: bool = Field(False, description="let OpenAI store responses; when off, "
                                           "reasoning round-trips encrypted")


class ChatSettings(ModelSettings):
    """``openai_compatible`` (Chat Completions)."""

    protocol: ClassVar[str] = "chat"

    reasoning_effort: Effort | None = Field(None, description="reasoning_effort")
    return_token_ids: bool = Field(False, description="ask a vLLM server for token ids "
                                                      "and logprobs")


class GeminiSettings(ModelSettings):
    """``gemini`` (Gemini API, google-genai)."""

    protocol: ClassVar[str] = "gemini"

    thinking_budget: int | None = Field(
        None, ge=-1, description="thinking budget in tokens (0 off, -1 dynamic)")
    include_thoughts: bool = Field(True, description="ask for thought summaries")


SETTINGS: dict[str, type[AgentSettings]] = {
    "oracle": AgentSettings, "nop": AgentSettings, "claude": ClaudeSettings,
    "openai": OpenAISettings, "openai_compatible": ChatSettings, "gemini": GeminiSettings}


def settings_model(name: str) -> type[AgentSettings]:
    return SETTINGS.get(name, AgentSettings)


def parse_settings(name: str, values: Mapping[str, Any] | AgentConfig | None,
                   model: str | None = None) -> AgentSettings:
    """``values`` as the typed settings of harness ``name``; a ConfigError names the
    first bad key. ``model`` enables the model-specific checks."""
    if isinstance(values, AgentConfig):
        values = values.model_dump(exclude_unset=False)
    cls = settings_model(name)
    try:
        settings = cls.model_validate(dict(values or {}))
    except ValidationError as exc:
        raise ConfigError(_one_line(name, cls, exc)) from None
    _check_model(name, settings, model)
    return settings


def _one_line(name: str, cls: type[AgentSettings], exc: ValidationError) -> str:
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"]) or "settings"
    if err["type"] == "extra_forbidden":
        close = difflib.get_close_matches(key, list(cls.model_fields), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else \
            f"; accepted: {', '.join(sorted(cls.model_fields))}"
        return f"agent {name!r} has no setting {key!r}{hint}"
    return f"agent {name!r} setting {key!r}: {err['msg']} (got {err.get('input')!r})"


def _check_model(name: str, s: AgentSettings, model: str | None) -> None:
    """What the model (not just the schema) rules out."""
    if isinstance(s, ClaudeSettings) and s.thinking:
        if s.thinking_budget is not None and s.adaptive_thinking:
            raise ConfigError(f"agent {name!r}: set thinking_budget or adaptive_thinking, "
                              "not both")
        if s.thinking_budget is not None and s.thinking_budget >= s.max_tokens:
            raise ConfigError(f"agent {name!r}: thinking_budget ({s.thinking_budget}) must be "
                              f"less than max_tokens ({s.max_tokens})")
        if s.temperature is not None and s.temperature != 1:
            raise ConfigError(f"agent {name!r}: temperature must be unset or 1 with "
                              "extended thinking")
        if s.top_p is not None and s.top_p < 0.95:
            raise ConfigError(f"agent {name!r}: top_p must be unset or >= 0.95 with "
                              "extended thinking")
    if isinstance(s, OpenAISettings | ChatSettings) and is_openai_reasoning_model(model):
        for key in ("temperature", "top_p"):
            if getattr(s, key) is not None:
                raise ConfigError(f"agent {name!r}: model {model!r} is a reasoning model and "
                                  f"does not accept {key}; drop it or use reasoning_effort")


def validate_agent(name: str | AgentSpec, settings: Mapping[str, Any] | None = None, *,
                   model: str | None = None, base_url: str | None = None,
                   gateway: bool = False) -> AgentSettings:
    """Check a harness name, its settings and its endpoint/key; the typed settings.

    Called once by the engine at run start, before Ray starts: an unknown agent, an
    unknown or out-of-range setting, a setting the model rejects, or a missing API key
    is a one-line ConfigError.
    """
    from hud_ray.agents import agent_class

    if isinstance(name, AgentSpec):
        spec = name
        name, settings = spec.name, spec.config.model_dump()
        model, base_url, gateway = spec.model, spec.base_url, spec.gateway
    cls = agent_class(name)
    if model is None:
        model = getattr(cls, "default_model", None)
    parsed = parse_settings(name, settings, model)
    if getattr(cls, "needs_model", False):
        from hud_ray.gateway import resolve_endpoint

        try:
            config = AgentConfig.model_validate(dict(settings or {}))
        except ValidationError as exc:  # pragma: no cover - parse_settings caught it
            raise ConfigError(str(exc).splitlines()[0]) from None
        endpoint = resolve_endpoint(AgentSpec(name=name, model=model, base_url=base_url,
                                              gateway=gateway, config=config))
        if endpoint.protocol == "chat" and isinstance(parsed, ClaudeSettings) and \
                parsed.thinking:
            raise ConfigError(f"agent {name!r}: extended thinking needs the Anthropic API; "
                              "through the Chat Completions gateway it cannot be sent")
    return parsed
