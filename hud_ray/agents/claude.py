"""``claude``: Anthropic Messages with tool use.

Every content block of an assistant turn goes back unchanged, ``thinking`` (with its
signature) and ``redacted_thinking`` included, as the API requires in tool loops with
extended thinking (``thinking_budget``). Request options the installed ``anthropic``
SDK's ``messages.create`` does not take as keywords (``temperature``, ``top_p`` in
some versions) travel in ``extra_body``.
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
    anthropic_client,
    consume,
    openai_client,
    parse_arguments,
    sdk_kwargs,
    system_and_messages,
)
from hud_ray.agents.openai_compatible import ChatConversation
from hud_ray.agents.settings import ClaudeSettings, ModelSettings
from hud_ray.agents.tools import Tool, tool_images
from hud_ray.types import AgentContext

_THINKING = ("thinking", "redacted_thinking")


class MessagesConversation(Conversation):
    def __init__(self, agent: ModelAgent, ctx: AgentContext, tools: list[Tool],
                 model: str, client: Any, settings: ModelSettings) -> None:
        self.client = client
        self.agent, self.model = agent, model
        system, rest = system_and_messages(ctx)
        self.messages: list[dict[str, Any]] = rest
        s = settings
        kwargs: dict[str, Any] = {"max_tokens": s.max_tokens}
        if system:
            kwargs["system"] = system
        if s.temperature is not None:
            kwargs["temperature"] = s.temperature
        if s.top_p is not None:
            kwargs["top_p"] = s.top_p
        if isinstance(s, ClaudeSettings) and s.thinking_budget is not None:
            kwargs["thinking"] = {"type": "enabled", "budget_tokens": s.thinking_budget}
        elif isinstance(s, ClaudeSettings) and s.adaptive_thinking:
            kwargs["thinking"] = {"type": "adaptive"}
        if tools:
            kwargs["tools"] = [t.anthropic() for t in tools]
        self.stream = s.stream
        if self.stream:
            kwargs["stream"] = True
        self.kwargs = sdk_kwargs(client.messages.create, kwargs)
        self._content: list[dict[str, Any]] = []

    async def call(self) -> Turn:
        if not self.stream:
            resp = await self.client.messages.create(model=self.model, messages=self.messages,
                                                     **self.kwargs)
            blocks = [b.model_dump(mode="json", exclude_none=True) for b in resp.content]
            return self._turn(blocks, resp.stop_reason, resp.model,
                              resp.usage.model_dump(mode="json"))
        return await self._call_streamed()

    async def _call_streamed(self) -> Turn:
        import anthropic

        t0 = time.perf_counter()
        ttft: float | None = None
        blocks: dict[int, dict[str, Any]] = {}
        partial: dict[int, list[str]] = {}
        usage: dict[str, Any] = {}
        model: str | None = None
        stop: str | None = None
        done = False
        stream = await self.client.messages.create(model=self.model, messages=self.messages,
                                                   **self.kwargs)
        async with aclosing(consume(stream, "messages", anthropic.APIStatusError)) as events:
            async for event in events:
                kind = event.type
                if kind == "message_start":
                    model = event.message.model
                    usage = event.message.usage.model_dump(mode="json")
                elif kind == "content_block_start":
                    if ttft is None:
                        ttft = time.perf_counter() - t0
                    blocks[event.index] = event.content_block.model_dump(mode="json",
                                                                         exclude_none=True)
                elif kind == "content_block_delta":
                    block, delta = blocks[event.index], event.delta
                    if delta.type == "text_delta":
                        block["text"] = block.get("text", "") + delta.text
                    elif delta.type == "thinking_delta":
                        block["thinking"] = block.get("thinking", "") + delta.thinking
                    elif delta.type == "signature_delta":
                        block["signature"] = delta.signature
                    elif delta.type == "input_json_delta":
                        partial.setdefault(event.index, []).append(delta.partial_json)
                elif kind == "content_block_stop":
                    if event.index in partial:
                        raw = "".join(partial.pop(event.index))
                        blocks[event.index]["input"] = parse_arguments(raw) if raw.strip() else {}
                        if not isinstance(blocks[event.index]["input"], dict):
                            blocks[event.index]["input"] = raw  # malformed: keep verbatim
                elif kind == "message_delta":
                    stop = event.delta.stop_reason
                    usage.update({k: v for k, v in event.usage.model_dump(mode="json").items()
                                  if v is not None})
                elif kind == "message_stop":
                    done = True
        if not done:
            raise StreamCut("messages stream ended before message_stop")
        turn = self._turn([blocks[i] for i in sorted(blocks)], stop, model, usage)
        turn.ttft = ttft
        return turn

    def _turn(self, blocks: list[dict[str, Any]], stop: str | None, model: str | None,
              usage: dict[str, Any]) -> Turn:
        texts: list[str] = []
        thoughts: list[str] = []
        calls: list[ToolCallRequest] = []
        self._content = []
        for block in blocks:
            kind = block.get("type")
            if kind == "text":
                texts.append(block["text"])
                self._content.append({"type": "text", "text": block["text"]})
            elif kind == "tool_use":
                calls.append(ToolCallRequest(block["id"], block["name"],
                                             parse_arguments(block.get("input"))))
                args = block.get("input")
                self._content.append({"type": "tool_use", "id": block["id"],
                                      "name": block["name"],
                                      "input": args if isinstance(args, dict) else {}})
            else:  # thinking, redacted_thinking and anything new: back unchanged
                if kind == "thinking":
                    thoughts.append(block.get("thinking", ""))
                self._content.append(block)
        finish = {"max_tokens": "length", "refusal": "refusal"}.get(stop or "", "stop")
        cached = usage.get("cache_read_input_tokens") or 0
        prompt = (usage.get("input_tokens") or 0) + cached + \
            (usage.get("cache_creation_input_tokens") or 0)
        details = usage.get("output_tokens_details") or {}
        return Turn(text="".join(texts) if texts else None, tool_calls=calls, finish=finish,
                    model=model, prompt_tokens=prompt,
                    completion_tokens=usage.get("output_tokens") or 0,
                    reasoning="\n".join(thoughts) if thoughts else None,
                    reasoning_items=[b for b in self._content if b.get("type") in _THINKING],
                    reasoning_tokens=details.get("thinking_tokens") or 0,
                    cached_tokens=cached)

    def add_assistant(self, turn: Turn) -> None:
        self.messages.append({"role": "assistant", "content": self._content or ""})

    def add_tool_results(self, results: list[tuple[ToolCallRequest, str]]) -> None:
        self.messages.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": call.id, "content": _with_images(output)}
            for call, output in results]})


class ClaudeAgent(ModelAgent):
    """Anthropic Messages harness (Chat Completions when routed via the gateway)."""

    name = "claude"
    default_model = "claude-sonnet-4-6"  # claude-sonnet-4-5 reaches end-of-life 2026-11-30

    def _make_client(self, connections: int) -> Any:
        if self.endpoint.protocol == "chat":
            return openai_client(self.endpoint, connections, self.request_timeout)
        return anthropic_client(self.endpoint, connections, self.request_timeout)

    def conversation(self, ctx: AgentContext, tools: list[Tool], model: str,
                     client: Any, settings: ModelSettings) -> Conversation:
        if self.endpoint.protocol == "chat":
            return ChatConversation(self, ctx, tools, model, client, settings)
        return MessagesConversation(self, ctx, tools, model, client, settings)


__all__ = ["ClaudeAgent", "MessagesConversation"]


def _with_images(output: str) -> Any:
    """A tool result's content: text, plus image blocks when the tool returned images."""
    images = tool_images(output)
    if not images:
        return output
    return [{"type": "text", "text": str(output)}, *(
        {"type": "image", "source": {"type": "base64", "media_type": mime, "data": data}}
        for mime, data in images)]
