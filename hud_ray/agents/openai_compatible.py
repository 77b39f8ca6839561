"""``openai_compatible``: Chat Completions against any base URL (OpenAI, vLLM, sglang,
a gateway). With ``return_token_ids=true`` in the agent config it asks a vLLM-style
server for prompt/completion token ids and logprobs and records them."""

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
from hud_ray.agents.tools import Tool
from hud_ray.types import AgentContext


class ChatConversation(Conversation):
    def __init__(self, agent: ModelAgent, ctx: AgentContext, tools: list[Tool],
                 model: str, client: Any) -> None:
        self.client = client
        self.agent, self.model, self.tools = agent, model, tools
        system, rest = system_and_messages(ctx)
        self.messages: list[dict[str, Any]] = ([{"role": "system", "content": system}]
                                               if system else []) + rest
        cfg = ctx.config
        extras = cfg.model_extra or {}
        self.kwargs: dict[str, Any] = {"max_tokens": cfg.max_tokens}
        if cfg.temperature is not None:
            self.kwargs["temperature"] = cfg.temperature
        if tools:
            self.kwargs["tools"] = [t.openai_chat() for t in tools]
        self.token_ids = bool(extras.get("return_token_ids"))
        if self.token_ids:
            self.kwargs["logprobs"] = True
            self.kwargs["extra_body"] = {"return_token_ids": True}

    async def call(self) -> Turn:
        resp = await self.client.chat.completions.create(
            model=self.model, messages=self.messages, **self.kwargs)
        choice = resp.choices[0]
        msg = choice.message
        calls = [ToolCallRequest(c.id, c.function.name, parse_arguments(c.function.arguments))
                 for c in (msg.tool_calls or [])]
        self._raw_calls = [c.model_dump(exclude_none=True) for c in (msg.tool_calls or [])]
        usage = resp.usage
        turn = Turn(text=msg.content, tool_calls=calls,
                    finish="refusal" if getattr(msg, "refusal", None) else
                    (choice.finish_reason or "stop"),
                    model=resp.model,
                    prompt_tokens=usage.prompt_tokens if usage else 0,
                    completion_tokens=usage.completion_tokens if usage else 0)
        if self.token_ids:
            extra = resp.model_extra or {}
            cextra = choice.model_extra or {}
            turn.prompt_token_ids = extra.get("prompt_token_ids")
            turn.completion_token_ids = cextra.get("token_ids")
            if choice.logprobs is not None and choice.logprobs.content:
                turn.completion_logprobs = [lp.logprob for lp in choice.logprobs.content]
        return turn

    def add_assistant(self, turn: Turn) -> None:
        msg: dict[str, Any] = {"role": "assistant", "content": turn.text}
        if turn.tool_calls:
            msg["tool_calls"] = self._raw_calls
        self.messages.append(msg)

    def add_tool_results(self, results: list[tuple[ToolCallRequest, str]]) -> None:
        for call, output in results:
            self.messages.append({"role": "tool", "tool_call_id": call.id, "content": output})


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
                     client: Any) -> Conversation:
        return ChatConversation(self, ctx, tools, model, client)
