"""The local provider's reasoning shapes and strict mode, through the official SDKs."""

from __future__ import annotations

import anthropic
import openai
import pytest

from hud_ray.testing import FakeProvider, Fault, Reply, ToolCall, scripted

USER = [{"role": "user", "content": "go"}]
CHAT_TOOLS = [{"type": "function", "function": {"name": "bash", "parameters": {"type": "object"}}}]
RESP_TOOLS = [{"type": "function", "name": "bash", "parameters": {"type": "object"},
               "strict": False}]
CLAUDE_TOOLS = [{"name": "bash", "input_schema": {"type": "object"}}]
THINK = {"type": "enabled", "budget_tokens": 1024}
CALL = Reply(reasoning="let me look", redacted=True,
             tool_calls=(ToolCall("bash", {"command": "ls"}, id="call_1"),))


@pytest.fixture
async def provider():
    async with FakeProvider(scripted(CALL, Reply("done"))) as p:
        yield p


def oai(p):
    return openai.AsyncOpenAI(base_url=p.base_url, api_key="k", max_retries=0)


def claude(p):
    return anthropic.AsyncAnthropic(base_url=p.anthropic_base_url, api_key="k", max_retries=0)


async def _rejected(coro, exc=openai.BadRequestError):
    with pytest.raises(exc) as info:
        await coro
    return info.value


# ---- chat completions ---------------------------------------------------------------------------
async def test_chat_reasoning_content_must_come_back(provider):
    c = oai(provider)
    r = await c.chat.completions.create(model="m", messages=USER, tools=CHAT_TOOLS)
    msg = r.choices[0].message
    assert msg.model_extra["reasoning_content"] == "let me look"
    assert r.usage.completion_tokens_details.reasoning_tokens == 3
    chunks = [ch async for ch in await c.chat.completions.create(
        model="m", messages=USER, tools=CHAT_TOOLS, stream=True)]
    assert "".join(ch.choices[0].delta.model_extra.get("reasoning_content", "")
                   for ch in chunks if ch.choices) == "let me look"
    call = msg.tool_calls[0].model_dump()
    result = {"role": "tool", "tool_call_id": "call_1", "content": "a.txt"}
    err = await _rejected(c.chat.completions.create(model="m", messages=[
        *USER, {"role": "assistant", "content": None, "tool_calls": [call]}, result]))
    assert "reasoning_content is missing" in err.message and err.status_code == 400
    r = await c.chat.completions.create(model="m", messages=[
        *USER, {"role": "assistant", "content": None, "tool_calls": [call],
                "reasoning_content": "let me look"}, result])
    assert r.choices[0].message.content == "done"


async def test_chat_pairing_params_and_reasoning_models(provider):
    c = oai(provider)
    call = {"id": "x1", "type": "function", "function": {"name": "bash", "arguments": "{}"}}
    err = await _rejected(c.chat.completions.create(model="m", messages=[
        *USER, {"role": "tool", "tool_call_id": "nope", "content": "?"}]))
    assert "must be a response to a preceding message with 'tool_calls'" in err.message
    err = await _rejected(c.chat.completions.create(model="m", messages=[
        *USER, {"role": "assistant", "tool_calls": [call]}, *USER]))
    assert "did not have response messages: x1" in err.message
    err = await _rejected(c.chat.completions.create(model="m", messages=USER,
                                                    extra_body={"max_step": 3}))
    assert err.body["param"] == "max_step" and "Unrecognized request argument" in err.message
    err = await _rejected(c.chat.completions.create(model="o3-mini", messages=USER,
                                                    max_tokens=10))
    assert err.body["code"] == "unsupported_parameter" and "max_completion_tokens" in err.message
    err = await _rejected(c.chat.completions.create(model="gpt-5", messages=USER,
                                                    temperature=0.2))
    assert err.body["param"] == "temperature"
    r = await c.chat.completions.create(model="o3-mini", messages=USER,
                                        max_completion_tokens=10)
    assert r.choices[0].message.tool_calls


# ---- responses --------------------------------------------------------------------------------
async def test_responses_reasoning_items_and_encrypted_content(provider):
    c = oai(provider)
    r = await c.responses.create(model="o4-mini", input="go", tools=RESP_TOOLS, store=False,
                                 include=["reasoning.encrypted_content"])
    kinds = [o.type for o in r.output]
    assert kinds == ["reasoning", "function_call"]
    assert r.output[0].encrypted_content and r.usage.output_tokens_details.reasoning_tokens == 3
    items = [o.model_dump(exclude_none=True) for o in r.output]
    out = {"type": "function_call_output", "call_id": "call_1", "output": "a.txt"}
    r2 = await c.responses.create(model="o4-mini", input=[USER[0], *items, out],
                                  tools=RESP_TOOLS, store=False)
    assert r2.output_text == "done"
    # without the reasoning item, or with it but no encrypted content while store is off
    err = await _rejected(c.responses.create(model="o4-mini", input=[items[1], out],
                                             tools=RESP_TOOLS, store=False))
    assert "without its required 'reasoning' item" in err.message
    bare = {k: v for k, v in items[0].items() if k != "encrypted_content"}
    err = await _rejected(c.responses.create(model="o4-mini", input=[bare, items[1], out],
                                             tools=RESP_TOOLS, store=False),
                          openai.NotFoundError)
    assert "not persisted" in err.message
    forged = {**items[0], "encrypted_content": "Zm9yZ2Vk"}
    err = await _rejected(c.responses.create(model="o4-mini", input=[forged, items[1], out],
                                             tools=RESP_TOOLS, store=False))
    assert "could not be verified" in err.message
    events = [e async for e in await c.responses.create(
        model="o4-mini", input="go", tools=RESP_TOOLS, stream=True, store=False,
        include=["reasoning.encrypted_content"])]
    assert events[-1].response.output[0].type == "reasoning"


async def test_responses_strict_pairing_and_sampling(provider):
    c = oai(provider)
    loose = [{"type": "function", "name": "bash", "parameters": {"type": "object"}}]
    err = await _rejected(c.responses.create(model="m", input="go", tools=loose))
    assert err.body["param"] == "tools[0].strict"
    out = {"type": "function_call_output", "call_id": "zz", "output": "?"}
    err = await _rejected(c.responses.create(model="m", input=[out]))
    assert "No tool call found for function call output with call_id zz" in err.message
    fc = {"type": "function_call", "call_id": "yy", "name": "bash", "arguments": "{}"}
    err = await _rejected(c.responses.create(model="m", input=[fc]))
    assert "No tool output found for function call yy" in err.message
    err = await _rejected(c.responses.create(model="o3", input="go", top_p=0.5))
    assert err.body["param"] == "top_p"


# ---- anthropic messages -------------------------------------------------------------------------
async def test_anthropic_thinking_blocks_and_signatures(provider):
    a = claude(provider)
    m = await a.messages.create(model="c", max_tokens=2048, thinking=THINK, messages=USER,
                                tools=CLAUDE_TOOLS)
    assert [b.type for b in m.content] == ["thinking", "redacted_thinking", "tool_use"]
    assert m.content[0].signature and m.usage.output_tokens_details.thinking_tokens == 3
    async with a.messages.stream(model="c", max_tokens=2048, thinking=THINK, messages=USER,
                                 tools=CLAUDE_TOOLS) as s:
        final = await s.get_final_message()
    assert final.content[0].thinking == "let me look" and final.content[0].signature
    blocks = [b.model_dump(exclude_none=True) for b in m.content]
    result = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1",
                                           "content": "a.txt"}]}

    async def turn2(content, **kw):
        return await a.messages.create(model="c", max_tokens=2048, thinking=THINK,
                                       tools=CLAUDE_TOOLS, **kw, messages=[
                                           *USER, {"role": "assistant", "content": content},
                                           result])

    assert (await turn2(blocks)).content[-1].text == "done"
    err = await _rejected(turn2(blocks[2:]), anthropic.BadRequestError)
    assert "Expected `thinking` or `redacted_thinking`, but found `tool_use`" in err.message
    assert err.body["error"]["type"] == "invalid_request_error"
    err = await _rejected(turn2([{**blocks[0], "thinking": "edited"}, *blocks[1:]]),
                          anthropic.BadRequestError)
    assert "Invalid `signature`" in err.message
    err = await _rejected(turn2(blocks, extra_body={"temperature": 0.5}),
                          anthropic.BadRequestError)
    assert "temperature" in err.message
    # without thinking enabled no thinking block is sent, so none is required back
    m = await a.messages.create(model="c", max_tokens=64, messages=USER, tools=CLAUDE_TOOLS)
    assert [b.type for b in m.content] == ["tool_use"]


async def test_anthropic_pairing_budget_and_unknown_params(provider):
    a = claude(provider)
    use = {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "bash",
                                             "input": {}}]}
    err = await _rejected(a.messages.create(model="c", max_tokens=8, messages=[*USER, use,
                                                                               *USER]),
                          anthropic.BadRequestError)
    assert "`tool_use` ids were found without `tool_result` blocks" in err.message
    stray = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t9",
                                          "content": "x"}]}
    err = await _rejected(a.messages.create(model="c", max_tokens=8, messages=[stray]),
                          anthropic.BadRequestError)
    assert "unexpected `tool_use_id`" in err.message
    err = await _rejected(a.messages.create(model="c", max_tokens=1024, messages=USER,
                                            thinking=THINK), anthropic.BadRequestError)
    assert "greater than `thinking.budget_tokens`" in err.message
    err = await _rejected(a.messages.create(model="c", max_tokens=8, messages=USER,
                                            extra_body={"max_step": 1}),
                          anthropic.BadRequestError)
    assert "max_step: Extra inputs are not permitted" in err.message
    err = await _rejected(a.messages.create(model="c", max_tokens=8, messages=[
        {"role": "system", "content": "x"}, *USER]), anthropic.BadRequestError)
    assert "user" in err.message


async def test_lenient_mode_accepts_anything_and_cut_faults():
    async with FakeProvider(lambda req: Reply("ok"), strict=False) as p:
        r = await oai(p).chat.completions.create(model="o3", messages=USER, max_tokens=3,
                                                 extra_body={"whatever": 1})
        assert r.choices[0].message.content == "ok"
        p.set_policy(lambda req: Fault(kind="cut"))
        with pytest.raises(openai.APIConnectionError):
            await oai(p).chat.completions.create(model="m", messages=USER)
        stream = await oai(p).chat.completions.create(model="m", messages=USER, stream=True)
        with pytest.raises(Exception) as info:
            [ch async for ch in stream]
        assert not isinstance(info.value, AssertionError)
        p.set_policy(lambda req: Fault(kind="truncate"))
        stream = await oai(p).chat.completions.create(model="m", messages=USER, stream=True)
        chunks = [ch async for ch in stream]  # ends early, cleanly, with no finish_reason
        assert chunks and all(ch.choices[0].finish_reason is None for ch in chunks)


# ---- gemini ---------------------------------------------------------------------------------------
async def test_gemini_thoughts_signatures_and_pairing(provider):
    from google import genai
    from google.genai import errors, types

    g = genai.Client(api_key="k", http_options={"base_url": provider.gemini_base_url})
    tools = [types.Tool(function_declarations=[types.FunctionDeclaration(
        name="bash", parameters_json_schema={"type": "object"})])]
    cfg = types.GenerateContentConfig(tools=tools, thinking_config=types.ThinkingConfig(
        include_thoughts=True))
    r = await g.aio.models.generate_content(model="gemini-3-pro-preview", contents="go",
                                            config=cfg)
    parts = r.candidates[0].content.parts
    assert parts[0].thought and parts[0].text == "let me look"
    assert parts[1].function_call.name == "bash" and parts[1].thought_signature
    assert r.usage_metadata.thoughts_token_count == 3
    answer = types.Content(role="user", parts=[types.Part(function_response=types.FunctionResponse(
        id="call_1", name="bash", response={"result": "a.txt"}))])
    user = types.Content(role="user", parts=[types.Part(text="go")])
    r2 = await g.aio.models.generate_content(
        model="gemini-3-pro-preview", contents=[user, r.candidates[0].content, answer],
        config=cfg)
    assert r2.text == "done"
    stripped = types.Content(role="model", parts=[parts[1].model_copy(
        update={"thought_signature": None})])
    with pytest.raises(errors.ClientError) as info:
        await g.aio.models.generate_content(model="gemini-3-pro-preview",
                                            contents=[user, stripped, answer], config=cfg)
    assert info.value.code == 400 and "missing a thought_signature" in str(info.value)
    with pytest.raises(errors.ClientError, match="number of function response parts"):
        await g.aio.models.generate_content(
            model="gemini-3-pro-preview", contents=[user, r.candidates[0].content, user],
            config=cfg)
    chunks = [c async for c in await g.aio.models.generate_content_stream(
        model="gemini-3-pro-preview", contents="go", config=cfg)]
    assert chunks[-1].candidates[0].finish_reason == "STOP"
