"""The loop every model harness shares: call the model, run its tool calls, repeat.

A provider-specific :class:`Conversation` turns the loop's neutral events (prompt,
assistant turn, tool result) into that API's message format and makes the call.

Tool-call policy: arguments that are not a JSON object, or a tool the harness does not
offer, are fed back to the model as an error result so it can correct itself; the
second consecutive bad call ends the rollout with ``stop_reason = "error"`` and an
``AgentError(code="invalid_tool_call")``. A tool that raises is reported to the model
the same way (it is the environment talking, not the model misbehaving).
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import ssl
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from hud_ray.agents._retry import RetryPolicy, call_with_retries
from hud_ray.agents.base import Agent
from hud_ray.agents.settings import ModelSettings, parse_settings
from hud_ray.agents.toolbox import tools_for
from hud_ray.agents.tools import Tool
from hud_ray.errors import AgentError
from hud_ray.gateway import Endpoint, redact, resolve_endpoint
from hud_ray.types import AgentContext, AgentResult, AgentSpec

log = logging.getLogger(__name__)

MAX_TOOL_OUTPUT = 16_000


class StreamCut(ConnectionError):
    """A streamed response ended (or broke) before its final event: never an answer.
    A ConnectionError, so the retry layer retries it and, when retries run out, the
    rollout becomes a retryable ``infra_error``."""


@dataclass
class ToolCallRequest:
    id: str
    name: str
    arguments: Any  # a dict when valid; the raw text/value otherwise


@dataclass
class Turn:
    """One assistant turn, neutral across providers."""

    text: str | None
    tool_calls: list[ToolCallRequest] = field(default_factory=list)
    finish: str = "stop"  # stop | length | tool_calls | refusal | malformed
    model: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    prompt_token_ids: list[int] | None = None
    completion_token_ids: list[int] | None = None
    completion_logprobs: list[float] | None = None
    reasoning: str | None = None  # thinking / reasoning summary text, for the transcript
    #: the provider-native reasoning state sent back next turn (thinking blocks with
    #: signatures, Responses reasoning items); recorded in the transcript as is
    reasoning_items: list[dict[str, Any]] = field(default_factory=list)
    reasoning_tokens: int = 0
    cached_tokens: int = 0
    ttft: float | None = None  # seconds to the first streamed output (streaming only)


class Conversation(ABC):
    """One rollout's message history in a provider's own format."""

    @abstractmethod
    async def call(self) -> Turn: ...

    @abstractmethod
    def add_assistant(self, turn: Turn) -> None: ...

    @abstractmethod
    def add_tool_results(self, results: list[tuple[ToolCallRequest, str]]) -> None: ...


class ModelAgent(Agent):
    """Base of the model harnesses; subclasses build a client and a Conversation."""

    needs_model = True
    default_model: ClassVar[str | None] = None

    def __init__(self, spec: AgentSpec) -> None:
        super().__init__(spec)
        self._model: str | None = spec.model or self.default_model
        self.settings = self.settings_for(spec.config.model_dump(), self._model)
        self.endpoint: Endpoint = resolve_endpoint(spec)
        s = self.settings
        self.retry = RetryPolicy(max_attempts=s.max_attempts, base=s.backoff_base,
                                 cap=s.backoff_cap)
        self.request_timeout = s.request_timeout
        self.limiter: Any = None  # set by the placement layer when rpm/tpm limits apply
        self.connections_per_client = s.connections_per_client
        self._idle: list[Any] = []
        self._all: list[Any] = []
        self._settings_cache: tuple[Any, str, ModelSettings] | None = None

    def settings_for(self, values: dict[str, Any], model: str | None) -> ModelSettings:
        """The typed settings for one rollout (per-task overrides included)."""
        settings = parse_settings(self.spec.name, values, model)
        assert isinstance(settings, ModelSettings)
        return settings

    @property
    def model(self) -> str | None:
        return self._model

    @abstractmethod
    def _make_client(self, connections: int) -> Any:
        """A provider SDK client whose pool holds at most ``connections`` connections."""

    @abstractmethod
    def conversation(self, ctx: AgentContext, tools: list[Tool], model: str,
                     client: Any, settings: ModelSettings) -> Conversation: ...

    async def _resolve_model(self) -> str:
        if self._model is None:
            raise AgentError(f"agent {self.spec.name!r} needs --model", code="no_model")
        return self._model

    # Each conversation leases its own SDK client with a tiny connection pool. One
    # shared client with hundreds of connections spends most of its CPU in httpcore's
    # pool bookkeeping (every request scans every connection and every waiter); a
    # client per in-flight conversation keeps that scan O(1) (benchmarks/RESULTS.md).
    def lease_client(self) -> Any:
        if self._idle:
            return self._idle.pop()
        client = self._make_client(self.connections_per_client)
        self._all.append(client)
        return client

    def release_client(self, client: Any) -> None:
        self._idle.append(client)

    async def close(self) -> None:
        clients, self._all, self._idle = self._all, [], []
        for client in clients:
            try:
                await client.close()
            except Exception:
                log.debug("closing provider client failed", exc_info=True)

    async def _limited_call(self, conv: Conversation, estimate: int) -> Turn:
        async def attempt() -> Turn:
            if self.limiter is None:
                return await conv.call()
            await self.limiter.acquire(estimate)
            turn = await conv.call()  # a failed call keeps its estimate charged
            self.limiter.record(estimate, turn.prompt_tokens + turn.completion_tokens)
            return turn

        return await call_with_retries(attempt, self.retry,
                                       what=f"{self.spec.name} call to {self._model}")

    def _rollout_settings(self, ctx: AgentContext, model: str) -> ModelSettings:
        # rollouts without per-task overrides share one config object: parse it once
        cached = self._settings_cache
        if cached is not None and cached[0] is ctx.config and cached[1] == model:
            return cached[2]
        settings = self.settings_for(ctx.config.model_dump(), model)
        self._settings_cache = (ctx.config, model, settings)
        return settings

    async def run(self, ctx: AgentContext) -> AgentResult:
        model = await call_with_retries(self._resolve_model, self.retry, what="model lookup")
        settings = self._rollout_settings(ctx, model)
        result = AgentResult(answer=None, model=model,
                             usage={"prompt_tokens": 0, "completion_tokens": 0, "calls": 0,
                                    "reasoning_tokens": 0, "cached_tokens": 0})
        ctx.partial = result  # the worker records it if the agent phase is cut short
        tools, cleanup = await tools_for(ctx.capabilities, settings)
        client = self.lease_client()
        try:
            conv = self.conversation(ctx, tools, model, client, settings)
            by_name = {t.name: t for t in tools}
            bad_streak = 0
            estimate = settings.max_tokens + len(ctx.prompt.text) // 4
            for _ in range(settings.max_steps):
                t0 = time.perf_counter()
                turn = await self._limited_call(conv, estimate)
                result.call_latencies.append(round(time.perf_counter() - t0, 6))
                if turn.ttft is not None:
                    result.first_token_latencies.append(round(turn.ttft, 6))
                self._account(result, turn)
                conv.add_assistant(turn)
                step: dict[str, Any] = {"role": "assistant", "content": turn.text}
                if turn.reasoning is not None:
                    step["reasoning"] = turn.reasoning
                if turn.reasoning_items:
                    step["reasoning_items"] = turn.reasoning_items
                if turn.tool_calls:
                    step["tool_calls"] = [{"id": c.id, "name": c.name, "arguments": c.arguments}
                                          for c in turn.tool_calls]
                result.steps.append(step)
                if turn.text is not None:
                    result.answer = turn.text
                if turn.finish == "refusal":
                    result.stop_reason = "refusal"
                    return result
                if turn.finish == "malformed":  # the API rejected the model's tool call
                    result.stop_reason = "error"
                    result.error = AgentError("model made a malformed tool call",
                                              code="invalid_tool_call")
                    return result
                if not turn.tool_calls:
                    result.stop_reason = "length" if turn.finish == "length" else "done"
                    return result
                outputs: list[tuple[ToolCallRequest, str]] = []
                bad = False
                for call in turn.tool_calls:
                    output, ok = await self._run_tool(call, by_name)
                    bad = bad or not ok
                    outputs.append((call, output))
                    result.steps.append({"role": "tool", "name": call.name,
                                         "tool_call_id": call.id, "content": output})
                bad_streak = bad_streak + 1 if bad else 0
                if bad_streak >= 2:
                    result.stop_reason = "error"
                    result.error = AgentError(
                        f"model made invalid tool calls twice in a row (last: {call.name!r})",
                        code="invalid_tool_call")
                    return result
                conv.add_tool_results(outputs)
            result.stop_reason = "max_steps"
            return result
        finally:
            self.release_client(client)
            await cleanup()

    async def _run_tool(self, call: ToolCallRequest, tools: dict[str, Tool]) -> tuple[str, bool]:
        tool = tools.get(call.name)
        if tool is None:
            return (f"error: unknown tool {call.name!r}; available: "
                    f"{', '.join(sorted(tools)) or 'none'}", False)
        if not isinstance(call.arguments, dict):
            return (f"error: arguments for {call.name!r} must be a JSON object, got: "
                    f"{str(call.arguments)[:200]}", False)
        try:
            output = await tool.run(call.arguments)
        except Exception as exc:
            output = f"error: {type(exc).__name__}: {redact(str(exc))}"
        if len(output) > MAX_TOOL_OUTPUT:
            output = output[:MAX_TOOL_OUTPUT] + f"\n[... {len(output) - MAX_TOOL_OUTPUT} " \
                                                "more characters truncated]"
        return output, True

    @staticmethod
    def _account(result: AgentResult, turn: Turn) -> None:
        result.usage["prompt_tokens"] += turn.prompt_tokens
        result.usage["completion_tokens"] += turn.completion_tokens
        result.usage["reasoning_tokens"] += turn.reasoning_tokens
        result.usage["cached_tokens"] += turn.cached_tokens
        result.usage["calls"] += 1
        if turn.model:
            result.model = turn.model
        if turn.completion_token_ids is not None:
            result.prompt_token_ids = (result.prompt_token_ids or []) + \
                [turn.prompt_token_ids or []]
            result.completion_token_ids = (result.completion_token_ids or []) + \
                [turn.completion_token_ids]
            result.completion_logprobs = (result.completion_logprobs or []) + \
                [turn.completion_logprobs or []]


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context for every client: building one loads the CA bundle (~25 ms)."""
    try:
        import certifi

        return ssl.create_default_context(cafile=certifi.where())
    except ImportError:  # pragma: no cover
        return ssl.create_default_context()


def openai_client(endpoint: Endpoint, connections: int, timeout: float) -> Any:
    import httpx
    from openai import AsyncOpenAI, DefaultAsyncHttpxClient

    # the SDK types its client against its own httpx alias; the object is httpx's
    limits: Any = httpx.Limits(max_connections=connections,
                               max_keepalive_connections=connections)
    http = DefaultAsyncHttpxClient(limits=limits, verify=_tls())
    return AsyncOpenAI(base_url=endpoint.base_url, api_key=endpoint.api_key.get(),
                       max_retries=0, timeout=timeout, http_client=http)


def anthropic_client(endpoint: Endpoint, connections: int, timeout: float) -> Any:
    from anthropic import AsyncAnthropic, DefaultAsyncHttpxClient

    try:  # anthropic 2.x ships its own httpx fork
        import httpx2 as _httpx
    except ImportError:  # pragma: no cover - older SDKs use httpx
        import httpx as _httpx  # type: ignore[no-redef]
    http = DefaultAsyncHttpxClient(limits=_httpx.Limits(max_connections=connections,
                                                        max_keepalive_connections=connections),
                                   verify=_tls())
    return AsyncAnthropic(base_url=endpoint.base_url, api_key=endpoint.api_key.get(),
                          max_retries=0, timeout=timeout, http_client=http)


@functools.cache
def _params(fn: Callable[..., Any]) -> frozenset[str]:
    return frozenset(inspect.signature(fn).parameters)


def sdk_kwargs(method: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` split for an SDK method: what its signature takes stays a keyword, the
    rest travels in ``extra_body`` (e.g. ``temperature`` for an ``anthropic`` SDK whose
    ``messages.create`` has no such parameter). Checked against the installed SDK."""
    fn = getattr(method, "__func__", method)
    accepted = _params(fn)
    out: dict[str, Any] = {}
    extra: dict[str, Any] = dict(kwargs.pop("extra_body", None) or {})
    for key, value in kwargs.items():
        if key in accepted:
            out[key] = value
        else:
            extra[key] = value
    if extra:
        out["extra_body"] = extra
    return out


async def consume(stream: Any, what: str,
                  status_error: type[BaseException]) -> AsyncGenerator[Any, None]:
    """Iterate an SDK stream; a transport failure mid-stream becomes :class:`StreamCut`
    (an HTTP error status from the provider stays what it is). Always closes the stream."""
    try:
        async for event in stream:
            yield event
    except status_error:
        raise
    except Exception as exc:
        raise StreamCut(f"{what} stream broke off: {type(exc).__name__}: "
                        f"{redact(str(exc))[:200]}") from exc
    finally:
        try:
            await stream.close()
        except Exception:
            log.debug("closing a stream failed", exc_info=True)


def parse_arguments(raw: Any) -> Any:
    """Tool arguments as a dict, or the raw value when they are not a JSON object."""
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, str):
        try:
            value = json.loads(raw) if raw.strip() else {}
        except ValueError:
            return raw
        return value if isinstance(value, dict) else raw
    return raw


def system_and_messages(ctx: AgentContext) -> tuple[str | None, list[dict[str, Any]]]:
    """Split the prompt's chat messages into (system text, the rest)."""
    system = [ctx.config.system_prompt] if ctx.config.system_prompt else []
    rest = []
    for m in ctx.prompt.messages:
        if m.get("role") == "system":
            system.append(m["content"] if isinstance(m["content"], str) else
                          json.dumps(m["content"]))
        else:
            rest.append({"role": m.get("role", "user"), "content": m.get("content", "")})
    return ("\n\n".join(system) or None), rest
