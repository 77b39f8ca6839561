"""``openai``: the OpenAI Responses API with function tools.

Stateless: every call sends the whole conversation, and each turn's output items go
back verbatim, reasoning items included. With ``store`` off (the default) reasoning
items carry their encrypted content (requested with ``include``) so reasoning models
keep their chain of thought across tool calls. Function tools always state ``strict``.
"""

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
from hud_ray.agents.openai_compatible import ChatConversation
from hud_ray.agents.settings import ModelSettings, OpenAISettings, is_openai_reasoning_model
from hud_ray.agents.tools import Tool, tool_images
from hud_ray.types import AgentContext

_FIRST_OUTPUT = frozenset({"response.output_item.added", "response.output_text.delta",
                           "response.reasoning_summary_text.delta",
                           "response.function_call_arguments.delta"})


class ResponsesConversation(Conversation):
    def __init__(self, agent: ModelAgent, ctx: AgentContext, tools: list[Tool],
                 model: str, client: Any, settings: ModelSettings) -> None:
        self.client = client
        self.agent, self.model = agent, model
        system, rest = system_and_messages(ctx)
        self.input: list[dict[str, Any]] = list(rest)
        s = settings
        kwargs: dict[str, Any] = {"max_output_tokens": s.max_tokens}
        if system:
            kwargs["instructions"] = system
        if s.temperature is not None:
            kwargs["temperature"] = s.temperature
        if s.top_p is not None:
            kwargs["top_p"] = s.top_p
        if tools:
            kwargs["tools"] = [t.openai_responses() for t in tools]
        store = s.store if isinstance(s, OpenAISettings) else False
        kwargs["store"] = store
        reasoning: dict[str, Any] = {}
        if isinstance(s, OpenAISettings):
            if s.reasoning_effort:
                reasoning["effort"] = s.reasoning_effort
            if s.reasoning_summary:
                reasoning["summary"] = s.reasoning_summary
        if reasoning:
            kwargs["reasoning"] = reasoning
        if not store and (reasoning or is_openai_reasoning_model(model)):
            kwargs["include"] = ["reasoning.encrypted_content"]
        self.stream = s.stream
        if self.stream:
            kwargs["stream"] = True
        self.kwargs = sdk_kwargs(client.responses.create, kwargs)
        self._items: list[dict[str, Any]] = []

    async def call(self) -> Turn:
        if not self.stream:
            resp = await self.client.responses.create(model=self.model, input=self.input,
                                                      **self.kwargs)
            return self._turn(resp)
        import openai

        t0 = time.perf_counter()
        ttft: float | None = None
        final: Any = None
        stream = await self.client.responses.create(model=self.model, input=self.input,
                                                    **self.kwargs)
        async with aclosing(consume(stream, "responses", openai.APIStatusError)) as events:
            async for event in events:
                if ttft is None and event.type in _FIRST_OUTPUT:
                    ttft = time.perf_counter() - t0
                if event.type in ("response.completed", "response.incomplete"):
                    final = event.response
                elif event.type in ("response.failed", "error"):
                    raise StreamCut(f"responses stream reported {event.type}")
        if final is None:
            raise StreamCut("responses stream ended before response.completed")
        turn = self._turn(final)
        turn.ttft = ttft
        return turn

    def _turn(self, resp: Any) -> Turn:
        calls: list[ToolCallRequest] = []
        texts: list[str] = []
        summaries: list[str] = []
        refusal = False
        self._items = []
        reasoning_items: list[dict[str, Any]] = []
        for item in resp.output:
            raw = item.model_dump(mode="json", exclude_none=True)
            self._items.append(raw)
            if item.type == "function_call":
                calls.append(ToolCallRequest(item.call_id, item.name,
                                             parse_arguments(item.arguments)))
            elif item.type == "reasoning":
                reasoning_items.append(raw)
                summaries.extend(part.text for part in item.summary or ())
            elif item.type == "message":
                for part in item.content:
                    if part.type == "output_text":
                        texts.append(part.text)
                    elif part.type == "refusal":
                        refusal = True
        text = "".join(texts) if texts else None
        incomplete = resp.status == "incomplete"
        usage = resp.usage
        idetails = getattr(usage, "input_tokens_details", None)
        odetails = getattr(usage, "output_tokens_details", None)
        return Turn(text=text, tool_calls=calls,
                    finish="refusal" if refusal else ("length" if incomplete else "stop"),
                    model=resp.model, prompt_tokens=usage.input_tokens if usage else 0,
                    completion_tokens=usage.output_tokens if usage else 0,
                    reasoning="\n".join(summaries) if reasoning_items else None,
                    reasoning_items=reasoning_items,
                    reasoning_tokens=getattr(odetails, "reasoning_tokens", None) or 0,
                    cached_tokens=getattr(idetails, "cached_tokens", None) or 0)

    def add_assistant(self, turn: Turn) -> None:
        self.input.extend(self._items)

    def add_tool_results(self, results: list[tuple[ToolCallRequest, str]]) -> None:
        parts: list[dict[str, Any]] = []
        for call, output in results:
            self.input.append({"type": "function_call_output", "call_id": call.id,
                               "output": output})
            parts.extend({"type": "input_image", "image_url": f"data:{mime};base64,{data}"}
                         for mime, data in tool_images(output))
        if parts:  # images a tool returned follow as a user message
            self.input.append({"role": "user", "content": [
                {"type": "input_text", "text": "Images returned by the tool calls above:"},
                *parts]})


class OpenAIAgent(ModelAgent):
    """OpenAI Responses API harness (Chat Completions when routed via the gateway)."""

    name = "openai"
    default_model = "gpt-4.1-mini"

    def _make_client(self, connections: int) -> Any:
        return openai_client(self.endpoint, connections, self.request_timeout)

    def conversation(self, ctx: AgentContext, tools: list[Tool], model: str,
                     client: Any, settings: ModelSettings) -> Conversation:
        if self.endpoint.protocol == "chat":
            return ChatConversation(self, ctx, tools, model, client, settings)
        return ResponsesConversation(self, ctx, tools, model, client, settings)
