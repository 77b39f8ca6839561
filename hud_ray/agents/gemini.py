"""``gemini``: Google's Gemini API (``google-genai`` SDK) with function calling.

Each model turn goes back as it came (parts merged, ``thought_signature`` kept), as Gemini
3 requires in function-calling loops. ``thinking_budget`` sets the thinking budget;
thought summaries are requested (``include_thoughts``) and recorded in the transcript.
"""

from __future__ import annotations

import time
from typing import Any

from hud_ray.agents._loop import (
    Conversation,
    ModelAgent,
    StreamCut,
    ToolCallRequest,
    Turn,
    openai_client,
    system_and_messages,
)
from hud_ray.agents.openai_compatible import ChatConversation
from hud_ray.agents.settings import GeminiSettings, ModelSettings
from hud_ray.agents.tools import Tool
from hud_ray.types import AgentContext

_FINISH = {"MAX_TOKENS": "length", "SAFETY": "refusal", "PROHIBITED_CONTENT": "refusal",
           "BLOCKLIST": "refusal", "SPII": "refusal", "RECITATION": "refusal",
           "MALFORMED_FUNCTION_CALL": "malformed"}


def _transport_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = []
    try:
        import httpx

        errors.append(httpx.TransportError)
    except ImportError:  # pragma: no cover
        pass
    try:
        import aiohttp

        errors.append(aiohttp.ClientError)
    except ImportError:
        pass
    return tuple(errors)


class GeminiConversation(Conversation):
    def __init__(self, agent: ModelAgent, ctx: AgentContext, tools: list[Tool],
                 model: str, client: Any, settings: ModelSettings) -> None:
        from google.genai import types

        self.types = types
        self.client = client
        self.agent, self.model = agent, model
        system, rest = system_and_messages(ctx)
        self.contents: list[Any] = [
            types.Content(role="model" if m["role"] == "assistant" else "user",
                          parts=[types.Part(text=m["content"] if isinstance(m["content"], str)
                                            else str(m["content"]))]) for m in rest]
        s = settings
        config: dict[str, Any] = {"max_output_tokens": s.max_tokens,
                                  "automatic_function_calling": {"disable": True}}
        if system:
            config["system_instruction"] = system
        if s.temperature is not None:
            config["temperature"] = s.temperature
        if s.top_p is not None:
            config["top_p"] = s.top_p
        if isinstance(s, GeminiSettings):
            thinking: dict[str, Any] = {"include_thoughts": s.include_thoughts}
            if s.thinking_budget is not None:
                thinking["thinking_budget"] = s.thinking_budget
            config["thinking_config"] = thinking
        if tools:
            config["tools"] = [{"function_declarations": [
                {"name": t.name, "description": t.description,
                 "parameters_json_schema": t.parameters} for t in tools]}]
        self.config = types.GenerateContentConfig.model_validate(config)
        self.stream = s.stream
        self._content: Any = None
        self._transport = _transport_errors()

    async def call(self) -> Turn:
        t0 = time.perf_counter()
        ttft: float | None = None
        parts: list[Any] = []
        finish: str | None = None
        usage: Any = None
        model: str | None = None
        try:
            if not self.stream:
                resp = await self.client.aio.models.generate_content(
                    model=self.model, contents=self.contents, config=self.config)
                chunks = [resp]
            else:
                chunks = []
                stream = await self.client.aio.models.generate_content_stream(
                    model=self.model, contents=self.contents, config=self.config)
                async for chunk in stream:
                    if ttft is None and chunk.candidates:
                        ttft = time.perf_counter() - t0
                    chunks.append(chunk)
        except self._transport as exc:
            raise StreamCut(f"gemini call broke off: {type(exc).__name__}") from exc
        for chunk in chunks:
            model = chunk.model_version or model
            usage = chunk.usage_metadata or usage
            for cand in (chunk.candidates or [])[:1]:
                if cand.content is not None:
                    parts.extend(cand.content.parts or ())
                if cand.finish_reason is not None:
                    finish = str(getattr(cand.finish_reason, "value", cand.finish_reason))
        if self.stream and finish is None:
            raise StreamCut("gemini stream ended without a finish reason")
        return self._turn(_merge(parts, self.types), finish or "STOP", model, usage, ttft)

    def _turn(self, parts: list[Any], finish: str, model: str | None, usage: Any,
              ttft: float | None) -> Turn:
        types = self.types
        self._content = types.Content(role="model", parts=parts)
        texts: list[str] = []
        thoughts: list[str] = []
        calls: list[ToolCallRequest] = []
        for i, part in enumerate(parts):
            if part.function_call is not None:
                fc = part.function_call
                calls.append(ToolCallRequest(fc.id or f"{fc.name}#{i}", fc.name or "",
                                             dict(fc.args or {})))
            elif part.text is not None:
                (thoughts if part.thought else texts).append(part.text)
        items = [p.model_dump(mode="json", exclude_none=True) for p in parts
                 if p.thought or p.thought_signature]
        thoughts_n = getattr(usage, "thoughts_token_count", None) or 0
        return Turn(text="".join(texts) if texts else None, tool_calls=calls,
                    finish=_FINISH.get(finish, "stop"), model=model,
                    prompt_tokens=getattr(usage, "prompt_token_count", None) or 0,
                    completion_tokens=(getattr(usage, "candidates_token_count", None) or 0)
                    + thoughts_n,
                    reasoning="".join(thoughts) if thoughts else None,
                    reasoning_items=items, reasoning_tokens=thoughts_n,
                    cached_tokens=getattr(usage, "cached_content_token_count", None) or 0,
                    ttft=ttft)

    def add_assistant(self, turn: Turn) -> None:
        self.contents.append(self._content)

    def add_tool_results(self, results: list[tuple[ToolCallRequest, str]]) -> None:
        types = self.types
        parts = []
        for call, output in results:
            own_id = "#" not in call.id
            parts.append(types.Part(function_response=types.FunctionResponse(
                id=call.id if own_id else None, name=call.name, response={"result": output})))
        self.contents.append(types.Content(role="user", parts=parts))


def _merge(parts: list[Any], types: Any) -> list[Any]:
    """Streamed parts joined back into whole parts: consecutive text parts of the same
    kind (thought or not) concatenate, keeping the signature one of them carried."""
    out: list[Any] = []
    for part in parts:
        prev = out[-1] if out else None
        if (prev is not None and part.text is not None and prev.text is not None
                and bool(part.thought) == bool(prev.thought) and prev.function_call is None
                and not prev.thought_signature):
            out[-1] = prev.model_copy(update={
                "text": prev.text + part.text,
                "thought_signature": part.thought_signature or prev.thought_signature})
        else:
            out.append(part)
    return out


class GeminiAgent(ModelAgent):
    """Gemini API harness (Chat Completions when routed via the gateway)."""

    name = "gemini"
    default_model = "gemini-2.5-flash"

    def _make_client(self, connections: int) -> Any:
        if self.endpoint.protocol == "chat":
            return openai_client(self.endpoint, connections, self.request_timeout)
        from google import genai
        from google.genai import types

        options = types.HttpOptions(timeout=int(self.request_timeout * 1000),
                                    base_url=self.endpoint.base_url)
        return genai.Client(api_key=self.endpoint.api_key.get(), http_options=options)

    async def close(self) -> None:
        clients, self._all, self._idle = self._all, [], []
        for client in clients:
            try:
                aio = getattr(client, "aio", None)
                if aio is not None and hasattr(aio, "aclose"):
                    await aio.aclose()
                elif hasattr(client, "close"):
                    result = client.close()
                    if hasattr(result, "__await__"):
                        await result
            except Exception:
                pass

    def conversation(self, ctx: AgentContext, tools: list[Tool], model: str,
                     client: Any, settings: ModelSettings) -> Conversation:
        if self.endpoint.protocol == "chat":
            return ChatConversation(self, ctx, tools, model, client, settings)
        return GeminiConversation(self, ctx, tools, model, client, settings)
