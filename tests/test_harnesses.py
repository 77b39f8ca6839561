"""Model harnesses through the official SDK clients against the local provider."""

from __future__ import annotations

import json
import logging

import pytest

from hud_ray.agents import create_agent
from hud_ray.agents.tools import Tool
from hud_ray.errors import ProviderError, RateLimited
from hud_ray.testing import FakeProvider, Fault, Reply, ToolCall, faults, letters_policy, scripted
from hud_ray.types import AgentConfig, AgentContext, AgentSpec, Prompt

Q = "How many 'r's are in 'strawberry'? Reply with just the number."
AGENTS = ["openai_compatible", "openai", "claude", "gemini"]


def spec(name, p, **config):
    url = {"claude": p.anthropic_base_url, "gemini": p.gemini_base_url}.get(name, p.base_url)
    return AgentSpec(name=name, model="test-model", base_url=url,
                     config=AgentConfig.model_validate(config))


def ctx(text=Q, **config):
    return AgentContext(prompt=Prompt(session_id="s", text=text,
                                      messages=[{"role": "user", "content": text}]),
                        config=AgentConfig.model_validate(config), task_slug="t")


calls: list[dict] = []


async def _record(args):
    calls.append(args)
    return f"ran {args.get('thought')}"


RECORDER = Tool("think", "record a thought", {"type": "object"}, _record)


@pytest.fixture
async def provider():
    async with FakeProvider(letters_policy) as p:
        yield p


@pytest.mark.parametrize("name", AGENTS)
async def test_answers_and_records_usage(provider, name):
    agent = create_agent(spec(name, provider))
    result = await agent.run(ctx())
    assert result.answer == "3" and result.stop_reason == "done" and result.error is None
    assert result.usage["calls"] == 1 and result.usage["prompt_tokens"] > 0
    assert len(result.call_latencies) == 1 and result.model == "test-model"
    assert provider.log[-1].api == {"claude": "messages", "openai": "responses",
                                    "openai_compatible": "chat", "gemini": "gemini"}[name]
    await agent.close()


@pytest.mark.parametrize("name", AGENTS)
async def test_multi_turn_tool_calls(provider, name, monkeypatch):
    provider.set_policy(scripted(
        Reply(tool_calls=(ToolCall("think", {"thought": "one"}),)),
        Reply(text="thinking more", tool_calls=(ToolCall("think", {"thought": "two"}),)),
        Reply(text="final")))
    agent = create_agent(spec(name, provider))
    monkeypatch.setattr("hud_ray.agents.tools.THINK", RECORDER)
    monkeypatch.setattr("hud_ray.agents.toolbox.THINK", RECORDER)
    calls.clear()
    result = await agent.run(ctx(think_tool=True, system_prompt="be brief"))
    assert result.answer == "final" and result.stop_reason == "done"
    assert [c["thought"] for c in calls] == ["one", "two"]
    roles = [s["role"] for s in result.steps]
    assert roles == ["assistant", "tool", "assistant", "tool", "assistant"]
    assert result.steps[1]["content"] == "ran one"
    assert result.usage["calls"] == 3 and result.num_steps == 3
    last = provider.log[-1]
    assert last.turn == 2 and last.messages[0]["content"] == "be brief"
    assert "ran two" in last.last_text


@pytest.mark.parametrize("name", AGENTS)
async def test_step_limit_length_and_bad_tool_json(provider, name):
    provider.set_policy(lambda req: Reply(tool_calls=(ToolCall("think", {"thought": "x"}),)))
    result = await create_agent(spec(name, provider)).run(ctx(think_tool=True, max_steps=3))
    assert result.stop_reason == "max_steps" and result.usage["calls"] == 3
    provider.set_policy(lambda req: Reply(text="partial", finish="length"))
    result = await create_agent(spec(name, provider)).run(ctx())
    assert result.stop_reason == "length" and result.answer == "partial"
    provider.set_policy(lambda req: Reply(tool_calls=(ToolCall("think", '{"thought": '),)))
    result = await create_agent(spec(name, provider)).run(ctx(think_tool=True))
    assert result.stop_reason == "error" and result.error.code == "invalid_tool_call"
    if name != "gemini":  # Gemini reports MALFORMED_FUNCTION_CALL instead of the text
        assert "must be a JSON object" in result.steps[1]["content"]  # fed back once first


async def test_one_bad_call_is_fed_back_and_recovers(provider):
    provider.set_policy(scripted(Reply(tool_calls=(ToolCall("nope", {}),)), Reply(text="ok")))
    result = await create_agent(spec("openai_compatible", provider)).run(ctx())
    assert result.answer == "ok" and result.error is None
    assert "unknown tool 'nope'" in result.steps[1]["content"]


@pytest.mark.parametrize("name", AGENTS)
async def test_429_storm_is_ridden_out(provider, name):
    provider.set_policy(faults(letters_policy, first=3, fault=Fault(429, retry_after=0.05)))
    result = await create_agent(spec(name, provider)).run(ctx())
    assert result.answer == "3" and provider.requests == 4


@pytest.mark.parametrize("name", AGENTS)
async def test_provider_down_and_rejections(provider, name):
    provider.set_policy(lambda req: Fault(503))
    agent = create_agent(spec(name, provider, max_attempts=3, backoff_base=0.01))
    with pytest.raises(ProviderError) as info:
        await agent.run(ctx())
    assert info.value.retryable and provider.requests == 3
    provider.set_policy(lambda req: Fault(429, retry_after=0.01))
    with pytest.raises(RateLimited):
        await agent.run(ctx())
    provider.set_policy(lambda req: Fault(400, message="bad request"))
    with pytest.raises(ProviderError) as info:
        await agent.run(ctx())
    assert not info.value.retryable and info.value.code == "provider_rejected"


async def test_token_ids_recorded():
    async with FakeProvider(letters_policy) as p:
        result = await create_agent(spec("openai_compatible", p)).run(ctx(return_token_ids=True))
    assert result.completion_token_ids and result.completion_token_ids[0]
    assert result.prompt_token_ids[0] and result.completion_logprobs[0][0] < 0


async def test_model_discovered_from_server_when_not_given(provider):
    agent = create_agent(AgentSpec(name="openai_compatible", base_url=provider.base_url))
    result = await agent.run(ctx())
    assert result.answer == "3" and provider.log[-1].model == "fake"


async def test_api_key_never_leaks(monkeypatch, caplog):
    key = "sk-test-SECRET-0123456789abcdef"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    caplog.set_level(logging.DEBUG)
    async with FakeProvider(lambda req: Fault(401, message=f"bad key {key}")) as p:
        agent = create_agent(AgentSpec(name="openai_compatible", base_url=p.base_url,
                                       model="m"))
        assert key not in repr(agent.endpoint) and key not in str(agent.endpoint)
        with pytest.raises(ProviderError) as info:
            await agent.run(ctx())
    assert key not in str(info.value) and "***" in str(info.value)
    assert key not in caplog.text
    assert key not in json.dumps(agent.spec.model_dump())


@pytest.mark.parametrize("name", AGENTS)
async def test_seed_is_accepted_and_sent_where_the_api_takes_one(provider, name):
    """A sweep's seed axis reaches every harness; Chat Completions sends it as `seed`."""
    agent = create_agent(spec(name, provider, seed=7))
    result = await agent.run(ctx(seed=7))
    assert result.answer == "3" and result.error is None
    body = provider.log[-1].body
    assert (body.get("seed") == 7) if name == "openai_compatible" else "seed" not in body
    await agent.close()
