"""The three harnesses in multi-turn tool loops with thinking/reasoning on, streamed and
not, against the strict local provider (issue 15's six findings)."""

from __future__ import annotations

import json
import re

import pytest

from hud_ray.agents import create_agent
from hud_ray.agents.tools import Tool
from hud_ray.errors import ConfigError, ProviderError
from hud_ray.testing import FakeProvider, Fault, Reply, ToolCall, faults, scripted
from hud_ray.types import AgentConfig, AgentContext, AgentSpec, Prompt

Q = "List the files, then answer."
#: per harness: a reasoning-capable model name and the settings that turn reasoning on
REASONING = {
    "claude": ("claude-sonnet-4-6", {"thinking_budget": 2048, "max_tokens": 4096}),
    "openai": ("o4-mini", {"reasoning_effort": "low"}),
    "openai_compatible": ("kimi-k2-thinking", {}),
    "gemini": ("gemini-3-pro-preview", {"thinking_budget": 1024}),
}
AGENTS = list(REASONING)

LOOP = scripted(
    Reply(reasoning="I should look first.", redacted=True,
          tool_calls=(ToolCall("probe", {"path": "."}),)),
    Reply(text="Two files; checking one.", reasoning="Now read a.txt.",
          tool_calls=(ToolCall("probe", {"path": "a.txt"}),
                      ToolCall("probe", {"path": "b.txt"}))),
    Reply(text="a.txt says hello", reasoning="Done.", cached_tokens=7))

seen: list[str] = []


async def _probe(args):
    seen.append(args["path"])
    return {".": "a.txt b.txt", "a.txt": "hello", "b.txt": "world"}[args["path"]]


PROBE = Tool("probe", "read a path", {"type": "object", "properties": {"path": {"type": "string"}},
                                      "required": ["path"], "additionalProperties": False},
             _probe)


def spec(name, p, model="test-model", **config):
    url = {"claude": p.anthropic_base_url, "gemini": p.gemini_base_url}.get(name, p.base_url)
    return AgentSpec(name=name, model=model, base_url=url,
                     config=AgentConfig.model_validate(config))


def ctx(**config):
    return AgentContext(prompt=Prompt(session_id="s", text=Q,
                                      messages=[{"role": "user", "content": Q}]),
                        config=AgentConfig.model_validate(config), task_slug="t")


@pytest.fixture
def probe_tool(monkeypatch):
    async def tools_for(capabilities, config):
        async def cleanup():
            return None
        return [PROBE], cleanup

    for mod in ("_loop",):
        monkeypatch.setattr(f"hud_ray.agents.{mod}.tools_for", tools_for)
    seen.clear()


_ID = re.compile(r"(call_|toolu_|rs_|msg_|fc_)[0-9a-f]{24}")


def _normal(steps):
    """Steps with provider-made ids and sealed blobs replaced (they differ per call)."""
    text = json.dumps(steps, sort_keys=True)
    text = _ID.sub(r"\1ID", text)
    return re.sub(r'"(signature|encrypted_content|data)": "[^"]*"', r'"\1": "X"', text)


async def _run(name, stream, policy=LOOP, **extra):
    model, settings = REASONING[name]
    async with FakeProvider(policy) as p:
        agent = create_agent(spec(name, p, model, stream=stream, **settings, **extra))
        result = await agent.run(ctx(stream=stream, **settings, **extra))
        await agent.close()
    return result, p


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize("name", AGENTS)
async def test_tool_loop_with_reasoning_round_trips(probe_tool, name, stream):
    """Findings 1, 4, 5: reasoning comes back unchanged on every later call (the strict
    provider answers 400 otherwise), and the transcript keeps it."""
    result, p = await _run(name, stream)
    assert result.error is None and result.stop_reason == "done", result.error
    assert result.answer == "a.txt says hello" and seen == [".", "a.txt", "b.txt"]
    assert result.usage["calls"] == 3 and p.stats.total() == 3
    assert not any(":strict:" in k for k in p.stats), p.stats
    assistant = [s for s in result.steps if s["role"] == "assistant"]
    assert [s.get("reasoning") for s in assistant] == ["I should look first.",
                                                       "Now read a.txt.", "Done."]
    last = p.log[-1].body
    if name == "claude":
        sent = [m for m in last["messages"] if m["role"] == "assistant"]
        assert [b["type"] for b in sent[0]["content"]] == ["thinking", "redacted_thinking",
                                                           "tool_use"]
        assert sent[0]["content"][0]["signature"] and last["thinking"]["budget_tokens"] == 2048
        assert assistant[0]["reasoning_items"][0]["signature"]
    elif name == "openai":
        kinds = [i.get("type", "message") for i in last["input"]]
        assert kinds.count("reasoning") == 2 and last["store"] is False
        assert last["include"] == ["reasoning.encrypted_content"]
        assert all(i["encrypted_content"] for i in last["input"] if i.get("type") == "reasoning")
        assert last["tools"][0]["strict"] is True and last["reasoning"] == {"effort": "low"}
        assert assistant[0]["reasoning_items"][0]["encrypted_content"]
    elif name == "gemini":
        sent = [c for c in last["contents"] if c["role"] == "model"]
        assert [p.get("thought") for p in sent[0]["parts"]] == [True, None]
        assert sent[0]["parts"][1]["thoughtSignature"] and "functionCall" in sent[0]["parts"][1]
        assert last["generationConfig"]["thinkingConfig"]["thinking_budget"] == 1024
    else:
        sent = [m for m in last["messages"] if m["role"] == "assistant"]
        assert [m["reasoning_content"] for m in sent] == ["I should look first.",
                                                          "Now read a.txt."]
    assert len(result.first_token_latencies) == (3 if stream else 0)
    assert all(0 < t <= c for t, c in zip(result.first_token_latencies,
                                         result.call_latencies, strict=False))


@pytest.mark.parametrize("name", AGENTS)
async def test_streamed_rows_match_plain_rows(probe_tool, name):
    plain, _ = await _run(name, False)
    streamed, _ = await _run(name, True)
    assert _normal(plain.steps) == _normal(streamed.steps)
    assert plain.usage == streamed.usage and plain.answer == streamed.answer
    assert plain.stop_reason == streamed.stop_reason


@pytest.mark.parametrize("name", AGENTS)
async def test_usage_counts_reasoning_and_cached_tokens(probe_tool, name):
    result, _ = await _run(name, False)
    # "I should look first." 4 + "Now read a.txt." 3 + "Done." 1
    assert result.usage["reasoning_tokens"] == 8
    assert result.usage["cached_tokens"] == 7
    assert result.usage["completion_tokens"] >= 8


def _dropping(name):
    """The harness as it was: reasoning dropped from what goes back."""
    from hud_ray.agents import claude, gemini, openai, openai_compatible

    if name == "claude":
        def add(self, turn):
            self.messages.append({"role": "assistant", "content": [
                b for b in self._content if b["type"] in ("text", "tool_use")]})
        return claude.MessagesConversation, add
    if name == "openai":
        def add(self, turn):
            self.input.extend(i for i in self._items if i.get("type") != "reasoning")
        return openai.ResponsesConversation, add
    if name == "gemini":
        def add(self, turn):
            self.contents.append(self._content.model_copy(update={"parts": [
                p.model_copy(update={"thought_signature": None})
                for p in self._content.parts if not p.thought]}))
        return gemini.GeminiConversation, add

    def add(self, turn):
        self.messages.append({"role": "assistant", "content": turn.text,
                              "tool_calls": self._raw_calls})
    return openai_compatible.ChatConversation, add


@pytest.mark.parametrize("name", AGENTS)
async def test_strict_provider_rejects_dropped_reasoning(probe_tool, monkeypatch, name):
    """The strict provider is what makes the round-trip tests meaningful: dropping the
    reasoning (what the harnesses used to do) is a 400 on the second call."""
    cls, add = _dropping(name)
    monkeypatch.setattr(cls, "add_assistant", add)
    with pytest.raises(ProviderError) as info:
        await _run(name, False)
    assert not info.value.retryable and "400" in str(info.value)
    expected = {"claude": "Expected `thinking` or `redacted_thinking`, but found `tool_use`",
                "openai": "without its required 'reasoning' item",
                "openai_compatible": "reasoning_content is missing",
                "gemini": "missing a thought_signature"}[name]
    assert expected in str(info.value)


@pytest.mark.parametrize("kind", ["cut", "truncate"])
@pytest.mark.parametrize("name", AGENTS)
async def test_cut_stream_is_retried_never_an_answer(probe_tool, name, kind):
    policy = faults(LOOP, first=1, fault=Fault(kind=kind, message="partial"))
    result, p = await _run(name, True, policy=policy, backoff_base=0.01)
    assert result.answer == "a.txt says hello" and result.usage["calls"] == 3
    assert p.requests == 4 and "partial" not in json.dumps(result.steps)
    always = faults(LOOP, every=1, fault=Fault(kind=kind, message="partial"))
    with pytest.raises(ProviderError) as info:
        await _run(name, True, policy=always, max_attempts=2, backoff_base=0.01)
    assert info.value.retryable and "StreamCut" in str(info.value)


async def test_claude_temperature_goes_through_the_installed_sdk():
    """Finding 2: the installed anthropic SDK's messages.create has no temperature
    keyword; the harness sends it in the body instead of crashing."""
    import inspect

    from anthropic.resources.messages import AsyncMessages

    takes = "temperature" in inspect.signature(AsyncMessages.create).parameters
    async with FakeProvider(lambda req: Reply("ok")) as p:
        for stream in (False, True):
            agent = create_agent(spec("claude", p, temperature=0.3, top_p=0.9, stream=stream))
            result = await agent.run(ctx(temperature=0.3, top_p=0.9, stream=stream))
            assert result.answer == "ok", takes
            assert p.log[-1].body["temperature"] == 0.3 and p.log[-1].body["top_p"] == 0.9


@pytest.mark.parametrize("stream", [False, True])
async def test_reasoning_models_get_max_completion_tokens(stream):
    """Finding 3: o-series / gpt-5 models take max_completion_tokens on Chat Completions."""
    async with FakeProvider(lambda req: Reply("ok")) as p:
        for model in ("o3-mini", "gpt-5-mini", "openai/o4-mini"):
            agent = create_agent(spec("openai_compatible", p, model, max_tokens=99,
                                      reasoning_effort="high", stream=stream))
            result = await agent.run(ctx(max_tokens=99, reasoning_effort="high", stream=stream))
            body = p.log[-1].body
            assert result.answer == "ok" and body["max_completion_tokens"] == 99
            assert "max_tokens" not in body and body["reasoning_effort"] == "high"
        await create_agent(spec("openai_compatible", p, "llama-3")).run(ctx())
        assert p.log[-1].body["max_tokens"] == 1024


@pytest.mark.parametrize("name,model,config,match", [
    ("claude", None, {"thinking_budget": 2048, "temperature": 0.5, "max_tokens": 4096},
     "temperature must be unset or 1"),
    ("claude", None, {"thinking_budget": 2048}, "less than max_tokens"),
    ("claude", None, {"adaptive_thinking": True, "temperature": 0.2}, "must be unset or 1"),
    ("claude", None, {"adaptive_thinking": True, "thinking_budget": 2048, "max_tokens": 4096},
     "not both"),
    ("claude", None, {"thinking_budget": 100, "max_tokens": 4096}, "greater than or equal"),
    ("openai", "o3", {"temperature": 0.2}, "does not accept temperature"),
    ("openai_compatible", "gpt-5", {"top_p": 0.5}, "does not accept top_p"),
    ("openai_compatible", "m", {"thinking_budget": 2048}, "no setting 'thinking_budget'"),
])
def test_settings_the_model_rejects_fail_before_the_run(name, model, config, match):
    with pytest.raises(ConfigError, match=match):
        create_agent(AgentSpec(name=name, model=model, base_url="http://127.0.0.1:9",
                               config=AgentConfig.model_validate(config)))


async def test_streamed_token_ids_match_plain():
    async with FakeProvider(lambda req: Reply("a b c", reasoning="hm")) as p:
        agent = create_agent(spec("openai_compatible", p))
        plain = await agent.run(ctx(return_token_ids=True))
        streamed = await agent.run(ctx(return_token_ids=True, stream=True))
    assert plain.completion_token_ids == streamed.completion_token_ids
    assert plain.prompt_token_ids == streamed.prompt_token_ids
    assert plain.completion_logprobs == streamed.completion_logprobs
    assert plain.completion_token_ids[0] and streamed.answer == "a b c"


@pytest.mark.parametrize("stream", [False, True])
async def test_claude_adaptive_thinking_loop(probe_tool, stream):
    async with FakeProvider(LOOP) as p:
        agent = create_agent(spec("claude", p, "claude-opus-4-6", adaptive_thinking=True))
        result = await agent.run(ctx(adaptive_thinking=True, stream=stream))
    assert result.answer == "a.txt says hello" and p.log[-1].body["thinking"] == {
        "type": "adaptive"}
    assert result.steps[0]["reasoning_items"][0]["type"] == "thinking"
