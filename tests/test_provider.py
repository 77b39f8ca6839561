"""The local provider against the official openai and anthropic clients, over loopback."""

from __future__ import annotations

import asyncio
import json
import time

import anthropic
import openai
import pytest
from openai import AsyncOpenAI, OpenAI

from hud_ray.testing import (
    FakeProvider,
    Fault,
    Reply,
    ToolCall,
    faults,
    letters_policy,
    scripted,
)

Q = "How many 'r's are in 'strawberry'? Reply with just the number."
TOOLS_CHAT = [{"type": "function", "function": {"name": "bash",
                                                 "parameters": {"type": "object"}}}]
BASH = Reply(tool_calls=(ToolCall("bash", {"command": "ls -la"}),))


@pytest.fixture
async def provider():
    async with FakeProvider(letters_policy) as p:
        yield p


def oai(p, **kw):
    return AsyncOpenAI(base_url=p.base_url, api_key="k", max_retries=kw.pop("retries", 0), **kw)


def claude(p, **kw):
    return anthropic.AsyncAnthropic(base_url=p.anthropic_base_url, api_key="k",
                                    max_retries=kw.pop("retries", 0), **kw)


async def test_chat_completions_plain_and_streamed(provider):
    c = oai(provider)
    r = await c.chat.completions.create(model="m", messages=[{"role": "user", "content": Q}])
    assert r.choices[0].message.content == "3" and r.choices[0].finish_reason == "stop"
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens == 1
    stream = await c.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "a b c"}], stream=True,
        stream_options={"include_usage": True})
    chunks = [ch async for ch in stream]
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == "a b c"
    assert chunks[-1].usage.total_tokens > 0


async def test_chat_tool_calls_streamed_and_malformed(provider):
    provider.set_policy(scripted(BASH, Reply(text="done")))
    c = oai(provider)
    r = await c.chat.completions.create(model="m", tools=TOOLS_CHAT,
                                        messages=[{"role": "user", "content": "go"}])
    call = r.choices[0].message.tool_calls[0]
    assert r.choices[0].finish_reason == "tool_calls"
    assert (call.function.name, json.loads(call.function.arguments)) == ("bash",
                                                                         {"command": "ls -la"})
    stream = await c.chat.completions.create(model="m", tools=TOOLS_CHAT, stream=True,
                                             messages=[{"role": "user", "content": "go"}])
    args = ""
    async for ch in stream:
        for tc in (ch.choices[0].delta.tool_calls or []) if ch.choices else []:
            args += tc.function.arguments or ""
    assert json.loads(args) == {"command": "ls -la"}
    # the second turn (after an assistant message) answers
    r = await c.chat.completions.create(model="m", messages=[
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "file.txt"}])
    assert r.choices[0].message.content == "done"
    assert provider.log[-1].turn == 1 and provider.log[-1].last_text == "file.txt"
    provider.set_policy(scripted(Reply(tool_calls=(ToolCall("bash", '{"command": '),))))
    r = await c.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert r.choices[0].message.tool_calls[0].function.arguments == '{"command": '


async def test_responses_api(provider):
    c = oai(provider)
    r = await c.responses.create(model="m", input=Q)
    assert r.output_text == "3" and r.usage.input_tokens > 0
    events = [e async for e in await c.responses.create(model="m", input="x y", stream=True)]
    assert events[-1].type == "response.completed"
    assert events[-1].response.output_text == "x y"
    provider.set_policy(scripted(BASH))
    r = await c.responses.create(model="m", input="go", tools=[
        {"type": "function", "name": "bash", "parameters": {"type": "object"}}])
    fc = next(o for o in r.output if o.type == "function_call")
    assert fc.name == "bash" and json.loads(fc.arguments) == {"command": "ls -la"}


async def test_anthropic_messages(provider):
    a = claude(provider)
    m = await a.messages.create(model="m", max_tokens=16,
                                messages=[{"role": "user", "content": Q}])
    assert m.content[0].text == "3" and m.stop_reason == "end_turn"
    async with a.messages.stream(model="m", max_tokens=16,
                                 messages=[{"role": "user", "content": "p q"}]) as s:
        final = await s.get_final_message()
    assert final.content[0].text == "p q"
    provider.set_policy(scripted(BASH))
    tools = [{"name": "bash", "input_schema": {"type": "object"}}]
    m = await a.messages.create(model="m", max_tokens=16, tools=tools,
                                messages=[{"role": "user", "content": "go"}])
    assert m.stop_reason == "tool_use" and m.content[0].input == {"command": "ls -la"}
    async with a.messages.stream(model="m", max_tokens=16, tools=tools,
                                 messages=[{"role": "user", "content": "go"}]) as s:
        final = await s.get_final_message()
    assert final.content[0].input == {"command": "ls -la"}


async def test_faults_surface_as_sdk_errors(provider):
    provider.set_policy(faults(letters_policy, first=1, fault=Fault(429, retry_after=0.3)))
    with pytest.raises(openai.RateLimitError) as info:
        await oai(provider).chat.completions.create(model="m",
                                                    messages=[{"role": "user", "content": Q}])
    assert info.value.response.headers["retry-after"] == "0.3"
    provider.set_policy(faults(letters_policy, first=1, fault=Fault(429, retry_after=0.3)))
    t0 = time.perf_counter()
    r = await oai(provider, retries=2).chat.completions.create(
        model="m", messages=[{"role": "user", "content": Q}])
    assert r.choices[0].message.content == "3" and time.perf_counter() - t0 >= 0.25
    provider.set_policy(faults(letters_policy, first=1, fault=Fault(429, retry_after=0.1)))
    with pytest.raises(anthropic.RateLimitError):
        await claude(provider).messages.create(model="m", max_tokens=4,
                                               messages=[{"role": "user", "content": Q}])
    provider.set_policy(lambda req: Fault(500))
    with pytest.raises(openai.InternalServerError):
        await oai(provider).chat.completions.create(model="m",
                                                    messages=[{"role": "user", "content": Q}])
    provider.set_policy(lambda req: Fault(kind="hang"))
    with pytest.raises(openai.APITimeoutError):
        await oai(provider, timeout=0.5).chat.completions.create(
            model="m", messages=[{"role": "user", "content": Q}])
    provider.set_policy(lambda req: Fault(kind="disconnect"))
    with pytest.raises(openai.APIConnectionError):
        await oai(provider).chat.completions.create(model="m",
                                                    messages=[{"role": "user", "content": Q}])


async def test_api_key_and_latency():
    async with FakeProvider(letters_policy, api_key="secret", latency=0.2) as p:
        with pytest.raises(openai.AuthenticationError):
            await oai(p).chat.completions.create(model="m",
                                                 messages=[{"role": "user", "content": Q}])
        good = AsyncOpenAI(base_url=p.base_url, api_key="secret", max_retries=0)
        t0 = time.perf_counter()
        await good.chat.completions.create(model="m", messages=[{"role": "user", "content": Q}])
        assert time.perf_counter() - t0 >= 0.2
        a = anthropic.AsyncAnthropic(base_url=p.anthropic_base_url, api_key="secret")
        m = await a.messages.create(model="m", max_tokens=4,
                                    messages=[{"role": "user", "content": Q}])
        assert m.content[0].text == "3"


async def test_token_ids_and_logprobs_like_vllm():
    async with FakeProvider(letters_policy, token_ids=True) as p:
        r = await oai(p).chat.completions.create(
            model="m", messages=[{"role": "user", "content": Q}],
            extra_body={"return_token_ids": True})
        extra = r.model_dump()
        assert extra["prompt_token_ids"] and extra["choices"][0]["token_ids"]
        assert r.choices[0].logprobs.content[0].token == "3"


async def test_many_concurrent_calls(provider):
    c = oai(provider)
    replies = await asyncio.gather(*(c.chat.completions.create(
        model="m", messages=[{"role": "user", "content": f"How many 'a's are in '{'a' * i}'?"}])
        for i in range(1, 201)))
    assert [r.choices[0].message.content for r in replies] == [str(i) for i in range(1, 201)]
    assert provider.requests == 200


def test_thread_mode_for_sync_clients():
    with FakeProvider(letters_policy) as p:
        r = OpenAI(base_url=p.base_url, api_key="k").chat.completions.create(
            model="m", messages=[{"role": "user", "content": Q}])
        assert r.choices[0].message.content == "3"
