"""``claude``: Anthropic Messages with tool use."""

from __future__ import annotations

from typing import Any

from hud_ray.agents._loop import (
    Conversation,
    ModelAgent,
    ToolCallRequest,
    Turn,
    anthropic_client,
    openai_client,
    system_and_messages,
)
from hud_ray.agents.openai_compatible import ChatConversation
from hud_ray.agents.tools import Tool
from hud_ray.types import AgentContext


class MessagesConversation(Conversation):
    def __init__(self, agent: ModelAgent, ctx: AgentContext, tools: list[Tool],
                 model: str, client: Any) -> None:
        self.client = client
        self.agent, self.model = agent, model
        system, rest = system_and_messages(ctx)
        self.messages: list[dict[str, Any]] = rest
        cfg = ctx.config
        self.kwargs: dict[str, Any] = {"max_tokens": cfg.max_tokens}
        if system:
            self.kwargs["system"] = system
        if cfg.temperature is not None:
            self.kwargs["temperature"] = cfg.temperature
        if tools:
            self.kwargs["tools"] = [t.anthropic() for t in tools]
        self._content: list[dict[str, Any]] = []

    async def call(self) -> Turn:
        resp = await self.client.messages.create(model=self.model,
                                                       messages=self.messages, **self.kwargs)
        texts, calls = [], []
        self._content = []
        for block in resp.content:
            if block.type == "text":
                texts.append(block.text)
                self._content.append({"type": "text", "text": block.text})
            elif block.type == "tool_use":
                calls.append(ToolCallRequest(block.id, block.name, block.input))
                self._content.append({"type": "tool_use", "id": block.id, "name": block.name,
                                      "input": block.input if isinstance(block.input, dict)
                                      else {}})
        stop = resp.stop_reason
        finish = {"max_tokens": "length", "refusal": "refusal"}.get(stop or "", "stop")
        return Turn(text="".join(texts) if texts else None, tool_calls=calls, finish=finish,
                    model=resp.model, prompt_tokens=resp.usage.input_tokens,
                    completion_tokens=resp.usage.output_tokens)

    def add_assistant(self, turn: Turn) -> None:
        self.messages.append({"role": "assistant", "content": self._content or ""})

    def add_tool_results(self, results: list[tuple[ToolCallRequest, str]]) -> None:
        self.messages.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": call.id, "content": output}
            for call, output in results]})


class ClaudeAgent(ModelAgent):
    """Anthropic Messages harness (Chat Completions when routed via the gateway)."""

    name = "claude"
    default_model = "claude-sonnet-4-5"

    def _make_client(self, connections: int) -> Any:
        if self.endpoint.protocol == "chat":
            return openai_client(self.endpoint, connections, self.request_timeout)
        return anthropic_client(self.endpoint, connections, self.request_timeout)

    def conversation(self, ctx: AgentContext, tools: list[Tool], model: str,
                     client: Any) -> Conversation:
        if self.endpoint.protocol == "chat":
            return ChatConversation(self, ctx, tools, model, client)
        return MessagesConversation(self, ctx, tools, model, client)
