"""FakeProvider against the official openai and anthropic clients (sync and async), over
real loopback sockets, plus raw-socket checks of its HTTP/1.1 handling."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import anthropic
import openai
import pytest
from anthropic.types import Message
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response

from hud_ray.testing import (
    FakeProvider,
    Fault,
    ProviderRequest,
    Reply,
    ToolCall,
    answer_from_prompt,
    faults,
    letters_policy,
    scripted,
)

Q = "How many 'r's are in 'strawberry'? Reply with just the number."
USER = [{"role": "user", "content": Q}]
CHAT_TOOLS = [{"type": "function", "function": {"name": "bash", "parameters": {"type": "object"}}}]
RESP_TOOLS = [{"type": "function", "name": "bash", "parameters": {"type": "object"},
               "strict": False}]
CLAUDE_TOOLS = [{"name": "bash", "input_schema": {"type": "object"}}]
BASH = Reply(tool_calls=(ToolCall("bash", {"command": "ls -la"}),))


@pytest.fixture
async def provider():
    async with FakeProvider(letters_policy) as p:
        yield p


def oai(p: FakeProvider, retries: int = 0, **kw) -> openai.AsyncOpenAI:
    kw.setdefault("api_key", "k")
    return openai.AsyncOpenAI(base_url=p.base_url, max_retries=retries, **kw)


def claude(p: FakeProvider, retries: int = 0, **kw) -> anthropic.AsyncAnthropic:
    kw.setdefault("api_key", "k")
    return anthropic.AsyncAnthropic(base_url=p.anthropic_base_url, max_retries=retries, **kw)


# ---- OpenAI chat completions -------------------------------------------------------------------
async def test_chat_text_plain_and_streamed(provider):
    c = oai(provider)
    raw = await c.chat.completions.with_raw_response.create(model="m", messages=USER)
    ChatCompletion.model_validate(json.loads(raw.http_response.text))  # the wire shape, strictly
    r = raw.parse()
    assert r.choices[0].message.content == "3" and r.choices[0].finish_reason == "stop"
    assert r.model == "m" and r.usage.prompt_tokens > 0 and r.usage.completion_tokens == 1

    provider.set_policy(lambda req: Reply("one two  three"))
    stream = await c.chat.completions.create(model="m", messages=USER, stream=True,
                                             stream_options={"include_usage": True})
    chunks = [ch async for ch in stream]
    for ch in chunks:
        ChatCompletionChunk.model_validate(ch.model_dump())
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) \
        == "one two  three"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 3

    provider.set_policy(lambda req: Reply("cut", finish="length"))
    r = await c.chat.completions.create(model="m", messages=USER)
    assert r.choices[0].finish_reason == "length"


async def test_chat_tool_calls_streamed_and_malformed(provider):
    provider.set_policy(scripted(BASH, Reply("done")))
    c = oai(provider)
    r = await c.chat.completions.create(model="m", tools=CHAT_TOOLS, messages=USER)
    call = r.choices[0].message.tool_calls[0]
    assert r.choices[0].finish_reason == "tool_calls" and r.choices[0].message.content is None
    assert call.function.name == "bash" and json.loads(call.function.arguments) == {
        "command": "ls -la"}

    stream = await c.chat.completions.create(model="m", tools=CHAT_TOOLS, messages=USER,
                                             stream=True)
    args, names, finish = "", [], None
    async for ch in stream:
        for tc in ch.choices[0].delta.tool_calls or []:
            names += [tc.function.name] if tc.function.name else []
            args += tc.function.arguments or ""
        finish = ch.choices[0].finish_reason or finish
    assert names == ["bash"] and json.loads(args) == {"command": "ls -la"}
    assert finish == "tool_calls"

    # the SDK's own stream helper reassembles the same call
    async with c.chat.completions.stream(model="m", tools=CHAT_TOOLS, messages=USER) as s:
        final = await s.get_final_completion()
    assert final.choices[0].message.tool_calls[0].function.arguments == args

    # the second turn (after an assistant message) answers
    r = await c.chat.completions.create(model="m", messages=[
        *USER, {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "file.txt"}])
    assert r.choices[0].message.content == "done"
    seen = provider.log[-1]
    assert (seen.turn, seen.last_text, seen.prompt_text) == (1, "file.txt", Q)
    assert seen.messages[1]["tool_calls"][0]["function"]["name"] == "bash"
    assert seen.messages[2] == {"role": "tool", "content": "file.txt", "tool_call_id": call.id}

    bad = '{"command": "ls'  # cut off mid-string: must arrive byte for byte
    provider.set_policy(scripted(Reply(tool_calls=(ToolCall("bash", bad, id="call_x"),))))
    r = await c.chat.completions.create(model="m", messages=USER)
    tc = r.choices[0].message.tool_calls[0]
    assert (tc.id, tc.function.arguments) == ("call_x", bad)
    stream = await c.chat.completions.create(model="m", messages=USER, stream=True)
    streamed = "".join([tc.function.arguments or "" async for ch in stream
                        for tc in ch.choices[0].delta.tool_calls or []])
    assert streamed == bad


def test_sync_openai_client_in_thread_mode():
    with FakeProvider(letters_policy) as p:
        client = openai.OpenAI(base_url=p.base_url, api_key="k", max_retries=0)
        assert client.chat.completions.create(
            model="m", messages=USER).choices[0].message.content == "3"
        text = "".join(ch.choices[0].delta.content or "" for ch in client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "a b"}], stream=True)
            if ch.choices)
        assert text == "a b"
        assert [m.id for m in client.models.list()] == ["fake"]
        assert p.requests == 2
    with pytest.raises(openai.APIConnectionError):  # stopped: nothing listens any more
        openai.OpenAI(base_url=p.base_url, api_key="k", max_retries=0).models.list()


# ---- OpenAI responses ----------------------------------------------------------------------------
async def test_responses_text_function_call_and_stream(provider):
    c = oai(provider)
    raw = await c.responses.with_raw_response.create(model="m", input=Q)
    Response.model_validate(json.loads(raw.http_response.text))
    r = raw.parse()
    assert r.output_text == "3" and r.status == "completed"
    assert r.usage.input_tokens > 0 and r.usage.output_tokens == 1

    events = [e async for e in await c.responses.create(model="m", input="x  y", stream=True)]
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed" and "response.output_text.delta" in kinds
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "x  y"
    assert events[-1].response.output_text == "x  y"

    provider.set_policy(scripted(BASH, Reply("listed")))
    r = await c.responses.create(model="m", input="go", tools=RESP_TOOLS)
    (fc,) = [o for o in r.output if o.type == "function_call"]
    assert fc.name == "bash" and json.loads(fc.arguments) == {"command": "ls -la"}
    async with c.responses.stream(model="m", input="go", tools=RESP_TOOLS) as s:
        final = await s.get_final_response()
    assert final.output[0].type == "function_call" and final.output[0].arguments == fc.arguments

    r = await c.responses.create(model="m", instructions="be brief", tools=RESP_TOOLS, input=[
        {"role": "user", "content": "go"}, fc.model_dump(exclude_none=True),
        {"type": "function_call_output", "call_id": fc.call_id, "output": "a.txt"}])
    assert r.output_text == "listed"
    seen = provider.log[-1]
    assert [m["role"] for m in seen.messages] == ["system", "user", "assistant", "tool"]
    assert (seen.api, seen.turn, seen.last_text, seen.tools) == ("responses", 1, "a.txt",
                                                                ["bash"])

    provider.set_policy(lambda req: Reply("trunc", finish="length"))
    r = await c.responses.create(model="m", input="x")
    assert r.status == "incomplete" and r.incomplete_details.reason == "max_output_tokens"


# ---- Anthropic messages ---------------------------------------------------------------------------
async def test_anthropic_messages_text_tool_use_and_stream(provider):
    a = claude(provider)
    raw = await a.messages.with_raw_response.create(model="m", max_tokens=16, messages=USER)
    Message.model_validate(json.loads(raw.http_response.text))
    m = await raw.parse()
    assert m.content[0].text == "3" and m.stop_reason == "end_turn"
    assert m.usage.input_tokens > 0 and m.usage.output_tokens == 1

    provider.set_policy(lambda req: Reply("p  q"))
    async with a.messages.stream(model="m", max_tokens=16, messages=USER) as s:
        deltas = [t async for t in s.text_stream]
        final = await s.get_final_message()
    assert "".join(deltas) == final.content[0].text == "p  q" and final.usage.output_tokens == 2

    provider.set_policy(scripted(BASH, Reply("listed")))
    m = await a.messages.create(model="m", max_tokens=16, tools=CLAUDE_TOOLS, messages=USER)
    assert m.stop_reason == "tool_use" and m.content[0].input == {"command": "ls -la"}
    async with a.messages.stream(model="m", max_tokens=16, tools=CLAUDE_TOOLS,
                                 messages=USER) as s:
        final = await s.get_final_message()
    assert final.stop_reason == "tool_use" and final.content[0].input == {"command": "ls -la"}

    tool_use = m.content[0]
    m = await a.messages.create(model="m", max_tokens=16, system="sys", tools=CLAUDE_TOOLS,
                                messages=[*USER, {"role": "assistant", "content": m.content},
                                          {"role": "user", "content": [
                                              {"type": "tool_result", "tool_use_id": tool_use.id,
                                               "content": "a.txt"}]}])
    assert m.content[0].text == "listed"
    seen = provider.log[-1]
    assert [x["role"] for x in seen.messages] == ["system", "user", "assistant", "tool"]
    assert json.loads(seen.messages[2]["tool_calls"][0]["function"]["arguments"]) == {
        "command": "ls -la"}
    assert (seen.turn, seen.last_text, seen.tools) == (1, "a.txt", ["bash"])

    # a malformed call streams verbatim over the raw event stream
    bad = '{"command": "ls'
    provider.set_policy(lambda req: Reply(tool_calls=(ToolCall("bash", bad),), finish="length"))
    stream = await a.messages.create(model="m", max_tokens=16, messages=USER, stream=True)
    events = [e async for e in stream]
    assert "".join(e.delta.partial_json for e in events if e.type == "content_block_delta") == bad
    assert [e.delta.stop_reason for e in events if e.type == "message_delta"] == ["max_tokens"]


def test_sync_anthropic_client_and_models():
    with FakeProvider(letters_policy) as p:
        a = anthropic.Anthropic(base_url=p.anthropic_base_url, api_key="k", max_retries=0)
        assert a.messages.create(model="m", max_tokens=4, messages=USER).content[0].text == "3"
        assert [m.id for m in a.models.list()] == ["fake"]


# ---- faults --------------------------------------------------------------------------------------
async def test_rate_limits_surface_and_retries_honour_retry_after(provider):
    provider.set_policy(faults(letters_policy, first=1, fault=Fault(429, retry_after=0.4)))
    with pytest.raises(openai.RateLimitError) as info:
        await oai(provider).chat.completions.create(model="m", messages=USER)
    assert info.value.response.headers["retry-after"] == "0.4"
    assert info.value.body["code"] == "rate_limit_exceeded"

    provider.set_policy(faults(letters_policy, first=1, fault=Fault(429, retry_after=0.4)))
    t0 = time.perf_counter()
    r = await oai(provider, retries=2).chat.completions.create(model="m", messages=USER)
    assert r.choices[0].message.content == "3" and time.perf_counter() - t0 >= 0.35

    provider.set_policy(faults(letters_policy, first=1, fault=Fault(429, retry_after=0.4)))
    with pytest.raises(anthropic.RateLimitError) as ainfo:
        await claude(provider).messages.create(model="m", max_tokens=4, messages=USER)
    assert ainfo.value.body["error"]["type"] == "rate_limit_error"
    t0 = time.perf_counter()  # the fault counter has passed `first`: the retry now succeeds
    provider.set_policy(faults(letters_policy, first=1, fault=Fault(429, retry_after=0.4)))
    m = await claude(provider, retries=2).messages.create(model="m", max_tokens=4, messages=USER)
    assert m.content[0].text == "3" and time.perf_counter() - t0 >= 0.35
    assert provider.stats["chat:http:429"] == 2 and provider.stats["messages:http:429"] == 2


async def test_server_errors_overload_and_policy_crash(provider):
    provider.set_policy(lambda req: Fault(500))
    with pytest.raises(openai.InternalServerError):
        await oai(provider).chat.completions.create(model="m", messages=USER)
    with pytest.raises(anthropic.InternalServerError):
        await claude(provider).messages.create(model="m", max_tokens=4, messages=USER)
    provider.set_policy(lambda req: Fault(529, message="busy"))
    with pytest.raises(anthropic.OverloadedError, match="busy"):
        await claude(provider).messages.create(model="m", max_tokens=4, messages=USER)
    provider.set_policy(lambda req: 1 / 0)
    with pytest.raises(openai.InternalServerError):
        await oai(provider).responses.create(model="m", input="x")
    assert provider.stats["responses:500"] == 1
    provider.set_policy(lambda req: Fault(400, message="bad things"))
    with pytest.raises(openai.BadRequestError, match="bad things"):
        await oai(provider).chat.completions.create(model="m", messages=USER)


async def test_hang_times_out_and_disconnect_fails(provider):
    provider.set_policy(faults(letters_policy, first=2, fault=Fault(kind="hang")))
    t0 = time.perf_counter()
    with pytest.raises(openai.APITimeoutError):
        await oai(provider, timeout=0.3).chat.completions.create(model="m", messages=USER)
    with pytest.raises(anthropic.APITimeoutError):
        await claude(provider, timeout=0.3).messages.create(model="m", max_tokens=4,
                                                            messages=USER)
    assert time.perf_counter() - t0 < 5
    r = await oai(provider, timeout=2).chat.completions.create(model="m", messages=USER)
    assert r.choices[0].message.content == "3"  # the provider itself is unaffected
    provider.set_policy(lambda req: Fault(kind="disconnect"))
    with pytest.raises(openai.APIConnectionError):
        await oai(provider).chat.completions.create(model="m", messages=USER)
    with pytest.raises(anthropic.APIConnectionError):
        await claude(provider).messages.create(model="m", max_tokens=4, messages=USER)


async def test_stop_drops_hanging_connections():
    arrived = asyncio.Event()

    def hang(req: ProviderRequest) -> Fault:
        arrived.set()
        return Fault(kind="hang")

    p = FakeProvider(hang)
    await p.start()
    call = asyncio.create_task(oai(p, timeout=30).chat.completions.create(model="m",
                                                                          messages=USER))
    await asyncio.wait_for(arrived.wait(), 5)
    t0 = time.perf_counter()
    await asyncio.wait_for(p.stop(), 5)
    with pytest.raises(openai.APIConnectionError):
        await asyncio.wait_for(call, 5)
    assert time.perf_counter() - t0 < 5


async def test_api_key():
    async with FakeProvider(letters_policy, api_key="secret") as p:
        with pytest.raises(openai.AuthenticationError):
            await oai(p, api_key="wrong").chat.completions.create(model="m", messages=USER)
        with pytest.raises(anthropic.AuthenticationError):
            await claude(p, api_key="wrong").messages.create(model="m", max_tokens=4,
                                                             messages=USER)
        with pytest.raises(openai.AuthenticationError):
            await oai(p, api_key="wrong").models.list()
        r = await oai(p, api_key="secret").chat.completions.create(model="m", messages=USER)
        m = await claude(p, api_key="secret").messages.create(model="m", max_tokens=4,
                                                              messages=USER)
        assert r.choices[0].message.content == m.content[0].text == "3"
        assert p.stats["chat:401"] == 1 and p.stats["messages:401"] == 1


async def test_latency_injection():
    async with FakeProvider(letters_policy, latency=0.2) as p:
        c = oai(p)
        t0 = time.perf_counter()
        await asyncio.gather(*(c.chat.completions.create(model="m", messages=USER)
                               for _ in range(20)))
        took = time.perf_counter() - t0
        assert 0.2 <= took < 2  # slept concurrently, not one after another
        p.set_policy(lambda req: Reply("slow", latency=0.3))
        t0 = time.perf_counter()
        stream = await c.chat.completions.create(model="m", messages=USER, stream=True)
        assert [ch async for ch in stream]
        assert time.perf_counter() - t0 >= 0.5


# ---- token ids -------------------------------------------------------------------------------------
async def test_token_ids_and_logprobs_like_vllm():
    async with FakeProvider(lambda req: Reply("Three r letters."), token_ids=True) as p:
        c = oai(p)
        r = await c.chat.completions.create(model="m", messages=USER, logprobs=True,
                                            extra_body={"return_token_ids": True})
        body = r.model_dump()
        ids, prompt_ids = body["choices"][0]["token_ids"], body["prompt_token_ids"]
        lps = r.choices[0].logprobs.content
        assert [lp.token for lp in lps] == ["Three", " r", " letters."]
        assert all(lp.logprob < 0 and lp.top_logprobs == [] for lp in lps)
        assert lps[1].bytes == list(b" r")
        assert len(ids) == r.usage.completion_tokens == 3 and all(0 <= i < 50000 for i in ids)
        assert len(prompt_ids) == r.usage.prompt_tokens
        again = (await c.chat.completions.create(model="m", messages=USER)).model_dump()
        assert again["choices"][0]["token_ids"] == ids  # deterministic
        assert again["prompt_token_ids"] == prompt_ids

        stream = await c.chat.completions.create(model="m", messages=USER, stream=True,
                                                 extra_body={"return_token_ids": True})
        chunks = [ch.model_dump() async for ch in stream]
        assert chunks[0]["prompt_token_ids"] == prompt_ids
        assert [i for ch in chunks for i in ch["choices"][0]["token_ids"]] == ids
        assert [lp["token"] for ch in chunks if ch["choices"][0]["logprobs"]
                for lp in ch["choices"][0]["logprobs"]["content"]] == [lp.token for lp in lps]

    async with FakeProvider(lambda req: Reply("a b")) as p:  # logprobs only when asked
        r = await oai(p).chat.completions.create(model="m", messages=USER)
        assert r.choices[0].logprobs is None and "prompt_token_ids" not in r.model_dump()
        r = await oai(p).chat.completions.create(model="m", messages=USER, logprobs=True)
        assert len(r.choices[0].logprobs.content) == 2
        assert "token_ids" not in r.choices[0].model_dump()
        r = await oai(p).chat.completions.create(model="m", messages=USER,
                                                 extra_body={"return_token_ids": True})
        assert len(r.model_dump()["choices"][0]["token_ids"]) == 2


# ---- policies, bookkeeping, concurrency --------------------------------------------------------------
async def test_policies_and_bookkeeping(provider):
    c = oai(provider)
    provider.set_policy(answer_from_prompt(str.upper))
    r = await c.chat.completions.create(model="m", messages=[
        {"role": "system", "content": "sys"}, {"role": "user", "content": "shout"}])
    assert r.choices[0].message.content == "SHOUT"

    async def slow_echo(req: ProviderRequest) -> Reply:
        await asyncio.sleep(0.01)
        return Reply(f"{req.api}:{req.model}:{req.last_text}")

    provider.set_policy(slow_echo)
    r = await c.chat.completions.create(model="gpt-x", messages=USER)
    assert r.choices[0].message.content == f"chat:gpt-x:{Q}"

    provider.set_policy(faults(letters_policy, every=3, fault=Fault(503)))
    outcomes = []
    for _ in range(6):
        try:
            await c.chat.completions.create(model="m", messages=USER)
            outcomes.append("ok")
        except openai.InternalServerError as e:
            outcomes.append(e.status_code)
    assert outcomes == ["ok", "ok", 503, "ok", "ok", 503]

    assert letters_policy(_request("How many 's's are in 'mississippi'?")).text == "4"
    assert letters_policy(_request("hello")).text == "hello"
    step = scripted(Reply("a"), Fault(429), Reply("c"))
    assert [step(_request("x", turns=n)) for n in range(4)] == [
        Reply("a"), Fault(429), Reply("c"), Reply("c")]
    assert provider.requests == 8 and len(provider.log) == 8
    assert provider.stats["chat:200"] == 6 and provider.stats["chat:http:503"] == 2
    assert [m.id for m in (await c.models.list()).data] == ["fake"]
    assert (await c.models.retrieve("fake")).owned_by == "hud-ray"


def _request(text: str, turns: int = 0) -> ProviderRequest:
    msgs = [{"role": "user", "content": text}]
    msgs += [{"role": "assistant", "content": "."}, {"role": "user", "content": "."}] * turns
    return ProviderRequest(api="chat", model="m", messages=msgs, tools=[], body={}, headers={})


async def test_many_concurrent_calls(provider):
    c = oai(provider)
    replies = await asyncio.gather(*(c.chat.completions.create(
        model="m", messages=[{"role": "user", "content": f"How many 'a's are in '{'a' * i}'?"}])
        for i in range(1, 201)))
    assert [r.choices[0].message.content for r in replies] == [str(i) for i in range(1, 201)]
    assert provider.requests == 200


async def test_throughput_sanity(provider):
    """A rough number for the log; the bound only catches a pathological slowdown."""
    n, conns = 4000, 8
    body = json.dumps({"model": "m", "messages": USER}).encode()
    request = (b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n"
               b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
               % (len(body), body))

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", provider.port)
        for _ in range(n // conns):
            writer.write(request)
            await _read_response(reader)
        writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(conns)))
    rate = n / (time.perf_counter() - t0)
    print(f"fake provider: {rate:.0f} chat completions/s (raw keep-alive client, same loop)")
    assert provider.requests == n and rate > 300


# ---- HTTP/1.1 handling, over raw sockets ----------------------------------------------------------------
def _post(path: str, body: bytes, extra: bytes = b"") -> bytes:
    return (b"POST %s HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n%s\r\n%s" % (path.encode(), len(body), extra, body))


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(head[0].split(" ")[1])
    headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:] if h)}
    if "content-length" in headers:
        return status, headers, await reader.readexactly(int(headers["content-length"]))
    body = b""
    while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
        body += (await reader.readexactly(size + 2))[:-2]
    await reader.readexactly(2)
    return status, headers, body


def _chat_body(text: str) -> bytes:
    return json.dumps({"model": "m", "messages": [{"role": "user", "content": text}]}).encode()


async def test_http_pipelining_partial_reads_and_keep_alive():
    async with FakeProvider(lambda req: Reply(req.last_text, latency=0.02 * (req.last_text
                                                                             == "slow"))) as p:
        reader, writer = await asyncio.open_connection("127.0.0.1", p.port)
        # three pipelined requests in one write; the slow first one still answers first
        writer.write(b"".join(_post("/v1/chat/completions", _chat_body(t))
                              for t in ("slow", "b", "c")))
        for expected in ("slow", "b", "c"):
            status, _, body = await _read_response(reader)
            assert status == 200
            assert json.loads(body)["choices"][0]["message"]["content"] == expected
        # the same connection, fed one byte at a time
        drip = json.dumps({"model": "m", "max_tokens": 8,
                           "messages": [{"role": "user", "content": "drip"}]}).encode()
        for byte in _post("/v1/messages", drip):
            writer.write(bytes([byte]))
            await writer.drain()
        status, _, body = await _read_response(reader)
        assert json.loads(body)["content"][0]["text"] == "drip"
        # a streamed answer is chunked and the connection stays usable afterwards
        writer.write(_post("/v1/chat/completions", json.dumps(
            {"model": "m", "stream": True, "messages": [{"role": "user", "content": "s"}]})
            .encode()))
        status, headers, body = await _read_response(reader)
        assert headers["transfer-encoding"] == "chunked"
        assert headers["content-type"] == "text/event-stream"
        assert body.endswith(b"data: [DONE]\n\n")
        writer.write(_post("/v1/chat/completions", _chat_body("last"),
                           b"connection: close\r\n"))
        status, headers, body = await _read_response(reader)
        assert headers["connection"] == "close" and await reader.read() == b""
        writer.close()
        assert p.requests == 6


async def test_http_expect_continue_chunked_body_and_errors():
    async with FakeProvider(lambda req: Reply(req.last_text)) as p:
        reader, writer = await asyncio.open_connection("127.0.0.1", p.port)
        body = _chat_body("expected")
        writer.write(_post("/v1/chat/completions", body, b"expect: 100-continue\r\n")
                     [:-len(body)])
        assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(body)
        status, _, got = await _read_response(reader)
        assert json.loads(got)["choices"][0]["message"]["content"] == "expected"

        body = _chat_body("chunked")
        writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n"
                     b"transfer-encoding: chunked\r\n\r\n"
                     + b"".join(b"%x\r\n%s\r\n" % (len(part), part)
                                for part in (body[:10], body[10:]))
                     + b"0\r\n\r\n")
        status, _, got = await _read_response(reader)
        assert json.loads(got)["choices"][0]["message"]["content"] == "chunked"

        writer.write(_post("/v1/chat/completions", b"{not json"))
        status, _, got = await _read_response(reader)
        assert status == 400 and "error" in json.loads(got)
        writer.write(b"GET /v1/nowhere HTTP/1.1\r\nhost: x\r\n\r\n")
        status, _, got = await _read_response(reader)
        assert status == 404
        writer.write(b"GET /health HTTP/1.0\r\n\r\n")  # HTTP/1.0: answered, then closed
        status, _, got = await _read_response(reader)
        assert status == 200 and await reader.read() == b""
        writer.close()

        reader, writer = await asyncio.open_connection("127.0.0.1", p.port)
        writer.write(b"NONSENSE\r\n\r\n")
        status, _, _ = await _read_response(reader)
        assert status == 400 and await reader.read() == b""
        writer.close()


def test_cli_serves_and_announces_its_port():
    proc = subprocess.Popen([sys.executable, "-m", "hud_ray.testing.provider", "--port", "0",
                             "--policy", "echo", "--token-ids"],
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("listening on http://127.0.0.1:")
        url = line.split("listening on ", 1)[1].strip()
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0)
        r = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        assert r.choices[0].message.content == "hi" and r.model_dump()["prompt_token_ids"]
    finally:
        proc.terminate()
        proc.wait(10)
