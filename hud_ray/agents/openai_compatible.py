"""``openai_compatible``: Chat Completions against any base URL (OpenAI, vLLM, sglang,
a gateway). With ``return_token_ids=true`` it asks a vLLM-style server for
prompt/completion token ids and logprobs and records them.

Model-aware: OpenAI reasoning models (o1/o3/o4, gpt-5) get ``max_completion_tokens``
instead of ``max_tokens``. A thinking server's ``reasoning_content`` (or vLLM's
``reasoning``) is sent back on the assistant turn it came with, as thinking servers
require in tool loops, and recorded in the transcript."""

from __future__ import annotations

import time
from contextlib import aclosing
from typing import Any

from hud_ray.agents._loop import (
    Conversation,
    ModelAgent,
    StreamCut,
    ToolCallRequest,
    Turn,
    consume,
    openai_client,
    parse_arguments,
    sdk_kwargs,
    system_and_messages,
)
from hud_ray.agents.settings import ModelSettings, is_openai_reasoning_model
from hud_ray.agents.tools import Tool, tool_images
from hud_ray.types import AgentContext

_REASONING_KEYS = ("reasoning_content", "reasoning")


class ChatConversation(Conversation):
    def __init__(self, agent: ModelAgent, ctx: AgentContext, tools: list[Tool],
                 model: str, client: Any, settings: ModelSettings) -> None:
        self.client = client
        self.agent, self.model, self.tools = agent, model, tools
        system, rest = system_and_messages(ctx)
        self.messages: list[dict[str, Any]] = ([{"role": "system", "content": system}]
                                               if system else []) + rest
        s = settings
        limit = "max_completion_tokens" if is_openai_reasoning_model(model) else "max_tokens"
        kwargs: dict[str, Any] = {limit: s.max_tokens}
        if s.temperature is not None:
            kwargs["temperature"] = s.temperature
        if s.top_p is not None:
            kwargs["top_p"] = s.top_p
        if s.seed is not None:
            kwargs["seed"] = s.seed
        if effort := getattr(s, "reasoning_effort", None):
            kwargs["reasoning_effort"] = effort
        if tools:
            kwargs["tools"] = [t.openai_chat() for t in tools]
        self.token_ids = bool(getattr(s, "return_token_ids", False))
        if self.token_ids:
            kwargs["logprobs"] = True
            kwargs["extra_body"] = {"return_token_ids": True}
        self.stream = s.stream
        if self.stream:
            kwargs["stream"] = True
            kwargs["stream_options"] = {"include_usage": True}
        self.kwargs = sdk_kwargs(client.chat.completions.create, kwargs)
        self._raw_calls: list[dict[str, Any]] = []
        self._reasoning: tuple[str, str] | None = None  # (field name, text)

    async def call(self) -> Turn:
        if self.stream:
            return await self._call_streamed()
        resp = await self.client.chat.completions.create(
            model=self.model, messages=self.messages, **self.kwargs)
        choice = resp.choices[0]
        msg = choice.message
        extra = msg.model_extra or {}
        reasoning = next(((k, extra[k]) for k in _REASONING_KEYS
                          if isinstance(extra.get(k), str)), None)
        raw = [{"id": c.id, "type": "function",
                "function": {"name": c.function.name, "arguments": c.function.arguments}}
               for c in (msg.tool_calls or [])]
        finish = "refusal" if getattr(msg, "refusal", None) else (choice.finish_reason or "stop")
        turn = self._turn(msg.content, reasoning, raw, finish, resp.model, resp.usage)
        if self.token_ids:
            cextra = choice.model_extra or {}
            turn.prompt_token_ids = (resp.model_extra or {}).get("prompt_token_ids")
            turn.completion_token_ids = cextra.get("token_ids")
            if choice.logprobs is not None and choice.logprobs.content:
                turn.completion_logprobs = [lp.logprob for lp in choice.logprobs.content]
        return turn

    async def _call_streamed(self) -> Turn:
        import openai

        t0 = time.perf_counter()
        stream = await self.client.chat.completions.create(
            model=self.model, messages=self.messages, **self.kwargs)
        text: list[str] = []
        saw_content = False
        reasoning: dict[str, list[str]] = {}
        calls: dict[int, dict[str, Any]] = {}
        finish: str | None = None
        refusal = False
        usage: Any = None
        model: str | None = None
        ttft: float | None = None
        prompt_ids: list[int] | None = None
        ids: list[int] = []
        logprobs: list[float] = []
        async with aclosing(consume(stream, "chat", openai.APIStatusError)) as events:
            async for chunk in events:
                model = chunk.model or model
                if chunk.usage is not None:
                    usage = chunk.usage
                if prompt_ids is None and self.token_ids:
                    prompt_ids = (chunk.model_extra or {}).get("prompt_token_ids")
                for choice in chunk.choices:
                    delta = choice.delta
                    dextra = delta.model_extra or {}
                    got = False
                    for key in _REASONING_KEYS:
                        if isinstance(dextra.get(key), str):
                            reasoning.setdefault(key, []).append(dextra[key])
                            got = True
                    if delta.content is not None:
                        saw_content = True
                        text.append(delta.content)
                        got = got or bool(delta.content)
                    if getattr(delta, "refusal", None):
                        refusal = got = True
                    for tc in delta.tool_calls or ():
                        got = True
                        entry = calls.setdefault(tc.index, {"id": None, "type": "function",
                                                            "function": {"name": "",
                                                                         "arguments": ""}})
                        if tc.id:
                            entry["id"] = tc.id
                        if tc.function is not None:
                            entry["function"]["name"] += tc.function.name or ""
                            entry["function"]["arguments"] += tc.function.arguments or ""
                    if got and ttft is None:
                        ttft = time.perf_counter() - t0
                    if self.token_ids:
                        ids.extend((choice.model_extra or {}).get("token_ids") or ())
                        if choice.logprobs is not None and choice.logprobs.content:
                            logprobs.extend(lp.logprob for lp in choice.logprobs.content)
                    if choice.finish_reason:
                        finish = choice.finish_reason
        if finish is None:
            raise StreamCut("chat stream ended without a finish_reason")
        content = "".join(text) if saw_content else None
        pick = next(((k, "".join(reasoning[k])) for k in _REASONING_KEYS if k in reasoning),
                    None)
        turn = self._turn(content, pick, [calls[i] for i in sorted(calls)],
                          "refusal" if refusal else finish, model, usage)
        turn.ttft = ttft
        if self.token_ids:
            turn.prompt_token_ids, turn.completion_token_ids = prompt_ids, ids
            turn.completion_logprobs = logprobs
        return turn

    def _turn(self, text: str | None, reasoning: tuple[str, str] | None,
              raw_calls: list[dict[str, Any]], finish: str, model: str | None,
              usage: Any) -> Turn:
        self._raw_calls = raw_calls
        self._reasoning = reasoning
        calls = [ToolCallRequest(c["id"], c["function"]["name"],
                                 parse_arguments(c["function"]["arguments"]))
                 for c in raw_calls]
        cdetails = getattr(usage, "completion_tokens_details", None)
        pdetails = getattr(usage, "prompt_tokens_details", None)
        return Turn(text=text, tool_calls=calls, finish=finish, model=model,
                    prompt_tokens=usage.prompt_tokens if usage else 0,
                    completion_tokens=usage.completion_tokens if usage else 0,
                    reasoning=reasoning[1] if reasoning else None,
                    reasoning_tokens=getattr(cdetails, "reasoning_tokens", None) or 0,
                    cached_tokens=getattr(pdetails, "cached_tokens", None) or 0)

    def add_assistant(self, turn: Turn) -> None:
        msg: dict[str, Any] = {"role": "assistant", "content": turn.text}
        if self._reasoning is not None:
            msg[self._reasoning[0]] = self._reasoning[1]
        if turn.tool_calls:
            msg["tool_calls"] = self._raw_calls
        self.messages.append(msg)

    def add_tool_results(self, results: list[tuple[ToolCallRequest, str]]) -> None:
        parts: list[dict[str, Any]] = []
        for call, output in results:
            self.messages.append({"role": "tool", "tool_call_id": call.id, "content": output})
            parts.extend({"type": "image_url", "image_url": {"url": f"data:{mime};base64,{data}"}}
                         for mime, data in tool_images(output))
        if parts:  # tool messages carry text only: images follow as a user turn
            self.messages.append({"role": "user", "content": [
                {"type": "text", "text": "Images returned by the tool calls above:"}, *parts]})


class OpenAICompatibleAgent(ModelAgent):
    """Chat Completions harness for any OpenAI-compatible server."""

    name = "openai_compatible"

    def _make_client(self, connections: int) -> Any:
        return openai_client(self.endpoint, connections, self.request_timeout)

    async def _resolve_model(self) -> str:
        if self._model is None:
            # a vLLM/sglang server serves one model: ask it which
            client = self.lease_client()
            try:
                models = await client.models.list()
            finally:
                self.release_client(client)
            ids = [m.id for m in models.data]
            if not ids:
                return await super()._resolve_model()
            self._model = ids[0]
        return self._model

    def conversation(self, ctx: AgentContext, tools: list[Tool], model: str,
                     client: Any, settings: ModelSettings) -> Conversation:
        return ChatConversation(self, ctx, tools, model, client, settings)
