"""The hud-ray exception tree.

Every error hud-ray raises is a :class:`HudRayError`. Errors that can end up in a
rollout record carry a stable ``code`` and whether a retry on a fresh sandbox can
help (``retryable``); the driver decides retries from those two attributes, never
by parsing messages.

    HudRayError
    ├── ConfigError              bad options, config files, unknown agent
    ├── TasksetError             a source that does not load, no tasks, unknown ids
    ├── EnvError                 an environment or template misbehaves
    │   ├── TemplateError        not an async generator, duplicate id, bad yields
    │   └── GradeError           the grade phase failed or produced a bad reward
    ├── AgentFault               the agent destroyed what its grader reads (scores 0.0, valid)
    ├── CapabilityError          a capability cannot be served or dialled
    ├── ProviderError            a model provider call failed
    │   └── RateLimited          429 / back-pressure, after retries
    ├── AgentError               the agent loop misbehaved (bad tool JSON, ...)
    ├── ActorLost                a Ray actor died under a rollout
    ├── PlacementError           actors' resource request not placed in time
    ├── LimiterLost              the shared rate limiter actor is gone (infra, retryable)
    ├── RolloutTimeout           a rollout exceeded its deadline (also a TimeoutError)
    ├── RecordError              a run directory cannot be read, written or resumed
    └── RunInterrupted           the run was stopped by a signal (rows so far are kept)
"""

from __future__ import annotations

import re


class HudRayError(Exception):
    """Base class of every hud-ray error."""

    code: str = "hud_ray_error"
    retryable: bool = False

    def __init__(self, message: str = "", *, code: str | None = None,
                 retryable: bool | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        if retryable is not None:
            self.retryable = retryable

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class ConfigError(HudRayError, ValueError):
    code = "config_error"


class TasksetError(HudRayError, ValueError):
    code = "taskset_error"


class EnvError(HudRayError):
    code = "env_error"


class TemplateError(EnvError, TypeError):
    code = "template_error"


class GradeError(EnvError):
    code = "grade_error"


class CapabilityError(HudRayError):
    code = "capability_error"
    retryable = True


class ProviderError(HudRayError):
    code = "provider_error"
    retryable = True


class RateLimited(ProviderError):
    code = "rate_limited"


class AgentError(HudRayError):
    code = "agent_error"


class AgentFault(HudRayError):
    """The agent destroyed what its grader reads (e.g. closed its own browser page).

    Raised by a grader's helpers, it is the agent's doing, not infrastructure: the
    rollout is scored 0.0 (valid), with ``code`` and the message in the grade's info.
    """

    code = "agent_fault"


class ActorLost(HudRayError):
    code = "actor_lost"
    retryable = True


class PlacementError(HudRayError):
    """Actors whose resource request no node gave them within the placement timeout."""

    code = "placement_timeout"


class LimiterLost(HudRayError):
    """The run's rate limiter actor died and could not be replaced (not the sandbox's fault)."""

    code = "limiter_lost"
    retryable = True


class RolloutTimeout(HudRayError, TimeoutError):
    code = "timeout"


class RecordError(HudRayError):
    code = "record_error"


class RunInterrupted(HudRayError):
    code = "interrupted"


_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
_FRAME = re.compile(r'^\s*File "[^"]*", line \d+')


def one_line(text: str, limit: int = 500) -> str:
    """``text`` as one line for an error message: ANSI escapes and traceback frames
    removed, whitespace collapsed, at most ``limit`` characters."""
    kept: list[str] = []
    frame_indent = -1
    for raw in _ANSI.sub("", text).splitlines():
        indent = len(raw) - len(raw.lstrip())
        line = raw.strip()
        if frame_indent >= 0 and line and indent > frame_indent:
            continue  # the source line under a frame
        frame_indent = -1
        if not line or line.startswith("Traceback (most recent call last)"):
            continue
        if _FRAME.match(raw):
            frame_indent = indent
            continue
        kept.append(line)
    out = " ".join("".join(c for c in " ".join(kept) if c.isprintable()).split())
    return out if len(out) <= limit else out[:limit - 3] + "..."


__all__ = [
    "ActorLost",
    "AgentError",
    "AgentFault",
    "CapabilityError",
    "ConfigError",
    "EnvError",
    "GradeError",
    "HudRayError",
    "LimiterLost",
    "PlacementError",
    "ProviderError",
    "RateLimited",
    "RecordError",
    "RolloutTimeout",
    "RunInterrupted",
    "TasksetError",
    "TemplateError",
]
