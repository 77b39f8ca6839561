"""What the local provider answers: requests, replies, faults, and ready-made policies."""

from __future__ import annotations

import itertools
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from hud_ray.errors import ConfigError


@dataclass(frozen=True, slots=True)
class ProviderRequest:
    """One model call as the provider saw it, normalised across the three APIs.

    ``messages`` is the conversation in order as ``{"role", "content"}`` dicts (roles
    ``system``, ``user``, ``assistant``, ``tool``; content flattened to text), with
    ``tool_calls`` on assistant turns (chat-completions shape: ``{"id", "type",
    "function": {"name", "arguments"}}``) and ``tool_call_id`` on tool results, whichever
    API the call came in on. ``body`` and ``headers`` are the raw request.
    """

    api: Literal["chat", "responses", "messages", "gemini"]
    model: str
    messages: list[dict[str, Any]]
    tools: list[str] = field(default_factory=list)
    body: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def prompt_text(self) -> str:
        """Text of the first user message."""
        for m in self.messages:
            if m["role"] == "user":
                return m["content"]
        return ""

    @property
    def last_text(self) -> str:
        """Text of the last message (a tool result, the latest user message, ...)."""
        return self.messages[-1]["content"] if self.messages else ""

    @property
    def turn(self) -> int:
        """How many assistant turns the conversation already has."""
        return sum(1 for m in self.messages if m["role"] == "assistant")


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call to send; a ``str`` ``arguments`` goes out verbatim (malformed JSON too)."""

    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """A model turn: text and/or tool calls. ``finish="length"`` reports truncation;
    ``latency`` delays this answer (on top of the provider's); token counts default to
    the provider's deterministic fake tokenizer.

    ``reasoning`` is the turn's thinking, sent the way each API sends it: Chat
    Completions ``reasoning_content``, a Responses ``reasoning`` item (with
    ``encrypted_content`` when the request includes it), an Anthropic ``thinking`` block
    with a signature (only when the request enables thinking). ``redacted`` adds an
    Anthropic ``redacted_thinking`` block. ``cached_tokens`` is reported as cached
    prompt tokens."""

    text: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    reasoning: str | None = None
    redacted: bool = False
    cached_tokens: int = 0
    finish: Literal["stop", "length"] = "stop"
    latency: float = 0.0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class Fault:
    """An injected failure: an HTTP error (with optional Retry-After), a hang, a
    disconnect, or a response cut off halfway (``cut``: the connection drops mid-body;
    ``truncate``: a stream ends cleanly but early, without its final event)."""

    status: int = 500
    retry_after: float | None = None
    message: str = "injected fault"
    kind: Literal["http", "hang", "disconnect", "cut", "truncate"] = "http"


Outcome = Reply | Fault
Policy = Callable[[ProviderRequest], Outcome | Awaitable[Outcome]]

_LETTERS = re.compile(r"""How many ['"](.+?)['"]s? are in ['"](.+?)['"]""")


def letters_policy(req: ProviderRequest) -> Reply:
    """Answers letter-count prompts correctly (just the number); echoes anything else."""
    m = _LETTERS.search(req.prompt_text)
    if m is None:
        return Reply(text=req.prompt_text)
    return Reply(text=str(m.group(2).count(m.group(1))))


def echo_policy(req: ProviderRequest) -> Reply:
    """Answers the text of the last message."""
    return Reply(text=req.last_text)


def answer_from_prompt(fn: Callable[[str], str]) -> Policy:
    """A policy answering ``fn(prompt_text)``."""
    return lambda req: Reply(text=fn(req.prompt_text))


def scripted(*turns: Outcome) -> Policy:
    """Reply ``turns[n]`` on a conversation's n-th assistant turn; repeat the last after."""
    if not turns:
        raise ConfigError("scripted() needs at least one turn")
    return lambda req: turns[min(req.turn, len(turns) - 1)]


def tool_turns(turns: int, *, then: Policy = letters_policy) -> Policy:
    """Call the first offered tool on each of the first ``turns - 1`` turns, then answer."""

    def policy(req: ProviderRequest) -> Outcome | Awaitable[Outcome]:
        if req.turn < turns - 1 and req.tools:
            return Reply(tool_calls=(ToolCall(req.tools[0], {"thought": f"step {req.turn}"}),))
        return then(req)

    return policy


def faults(policy: Policy, *, fault: Fault, first: int = 0, every: int | None = None) -> Policy:
    """Wrap ``policy``: inject ``fault`` on the first ``first`` requests and/or every
    ``every``-th request (counted across the whole provider)."""
    counter = itertools.count(1)

    def wrapped(req: ProviderRequest) -> Outcome | Awaitable[Outcome]:
        n = next(counter)
        if n <= first or (every is not None and n % every == 0):
            return fault
        return policy(req)

    return wrapped
