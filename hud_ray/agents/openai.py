"""``openai``: the OpenAI Responses API with function tools."""

from __future__ import annotations

from typing import Any

from hud_ray.agents._loop import (
    Conversation,
    ModelAgent,
    ToolCallRequest,
    Turn,
    openai_client,
    parse_arguments,
    system_and_messages,
)
from hud_ray.agents.openai_compatible import ChatConversation
from hud_ray.agents.tools import Tool
from hud_ray.types import AgentContext


class ResponsesConversation(Conversation):
    def __init__(self, agent: ModelAgent, ctx: AgentContext, tools: list[Tool],
                 model: str, client: Any) -> None:
        self.client = client
        self.agent, self.model = agent, model
        system, rest = system_and_messages(ctx)
        self.input: list[dict[str, Any]] = list(rest)
        cfg = ctx.config
        self.kwargs: dict[str, Any] = {"max_output_tokens": cfg.max_tokens}
        if system:
            self.kwargs["instructions"] = system
        if cfg.temperature is not None:
            self.kwargs["temperature"] = cfg.temperature
        if tools:
            self.kwargs["tools"] = [t.openai_responses() for t in tools]
        self._items: list[dict[str, Any]] = []

    async def call(self) -> Turn:
        resp = await self.client.responses.create(model=self.model, input=self.input,
                                                        **self.kwargs)
        calls, texts, refusal = [], [], False
        self._items = []
        for item in resp.output:
            if item.type == "function_call":
                calls.append(ToolCallRequest(item.call_id, item.name,
                                             parse_arguments(item.arguments)))
                self._items.append({"type": "function_call", "call_id": item.call_id,
                                    "name": item.name, "arguments": item.arguments})
            elif item.type == "message":
                for part in item.content:
                    if part.type == "output_text":
                        texts.append(part.text)
                    elif part.type == "refusal":
                        refusal = True
        text = "".join(texts) if texts else None
        if text is not None:
            self._items.insert(0, {"role": "assistant", "content": text})
        incomplete = resp.status == "incomplete"
        usage = resp.usage
        return Turn(text=text, tool_calls=calls,
                    finish="refusal" if refusal else ("length" if incomplete else "stop"),
                    model=resp.model, prompt_tokens=usage.input_tokens if usage else 0,
                    completion_tokens=usage.output_tokens if usage else 0)

    def add_assistant(self, turn: Turn) -> None:
        self.input.extend(self._items)

    def add_tool_results(self, results: list[tuple[ToolCallRequest, str]]) -> None:
        for call, output in results:
            self.input.append({"type": "function_call_output", "call_id": call.id,
                               "output": output})


class OpenAIAgent(ModelAgent):
    """OpenAI Responses API harness (Chat Completions when routed via the gateway)."""

    name = "openai"
    default_model = "gpt-4.1-mini"

    def _make_client(self, connections: int) -> Any:
        return openai_client(self.endpoint, connections, self.request_timeout)

    def conversation(self, ctx: AgentContext, tools: list[Tool], model: str,
                     client: Any) -> Conversation:
        if self.endpoint.protocol == "chat":
            return ChatConversation(self, ctx, tools, model, client)
        return ResponsesConversation(self, ctx, tools, model, client)
