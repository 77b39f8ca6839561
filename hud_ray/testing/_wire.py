"""The three provider wire formats: parse a request body into a ProviderRequest and
render a Reply as that API's JSON (or SSE stream)."""

from __future__ import annotations

import json
import time
import uuid
import zlib
from collections.abc import AsyncIterator
from typing import Any

from hud_ray.testing.policy import ProviderRequest, Reply, ToolCall


def _id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:24]}"


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for p in content:
            if isinstance(p, dict):
                if "text" in p:
                    parts.append(str(p["text"]))
                elif p.get("type") == "tool_result":
                    parts.append(_text(p.get("content")))
                elif "output" in p:
                    parts.append(_text(p.get("output")))
            else:
                parts.append(str(p))
        return "".join(parts)
    return str(content)


def tokens(text: str) -> list[int]:
    """Deterministic fake token ids: one per whitespace-separated word."""
    return [zlib.crc32(w.encode()) % 50000 for w in text.split()] or [0]


def estimate(text: str) -> int:
    return max(1, len(text) // 4)


def args_text(call: ToolCall) -> str:
    return call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments)


def call_id(call: ToolCall, i: int, prefix: str) -> str:
    return call.id or f"{prefix}{uuid.uuid4().hex[:20]}{i}"


# ---- parse -----------------------------------------------------------------------------
def parse(api: str, body: dict[str, Any], headers: dict[str, str]) -> ProviderRequest:
    msgs: list[dict[str, Any]] = []
    tools: list[str] = []
    if api == "chat":
        for m in body.get("messages") or []:
            entry = {"role": m.get("role", "user"), "content": _text(m.get("content"))}
            if m.get("tool_calls"):
                entry["tool_calls"] = m["tool_calls"]
            if m.get("tool_call_id"):
                entry["tool_call_id"] = m["tool_call_id"]
            msgs.append(entry)
        tools = [t.get("function", {}).get("name", "") for t in body.get("tools") or []]
    elif api == "responses":
        if body.get("instructions"):
            msgs.append({"role": "system", "content": body["instructions"]})
        inp = body.get("input")
        if isinstance(inp, str):
            msgs.append({"role": "user", "content": inp})
        for item in inp if isinstance(inp, list) else []:
            kind = item.get("type", "message")
            if kind == "message" or ("role" in item and kind not in ("function_call",
                                                                   "function_call_output")):
                msgs.append({"role": item.get("role", "user"),
                             "content": _text(item.get("content"))})
            elif kind == "function_call":
                call = {"id": item.get("call_id"),
                        "function": {"name": item.get("name"),
                                     "arguments": item.get("arguments")}}
                if msgs and msgs[-1]["role"] == "assistant":  # one turn, several items
                    msgs[-1].setdefault("tool_calls", []).append(call)
                else:
                    msgs.append({"role": "assistant", "content": "", "tool_calls": [call]})
            elif kind == "function_call_output":
                msgs.append({"role": "tool", "content": _text(item.get("output")),
                             "tool_call_id": item.get("call_id")})
        tools = [t.get("name", "") for t in body.get("tools") or [] if t.get("type") == "function"]
    else:  # anthropic messages
        system = body.get("system")
        if system:
            msgs.append({"role": "system", "content": _text(system)})
        for m in body.get("messages") or []:
            content = m.get("content")
            if m.get("role") == "user" and isinstance(content, list) and any(
                    isinstance(b, dict) and b.get("type") == "tool_result" for b in content):
                for b in content:
                    if b.get("type") == "tool_result":
                        msgs.append({"role": "tool", "content": _text(b.get("content")),
                                     "tool_call_id": b.get("tool_use_id")})
                continue
            entry = {"role": m.get("role", "user"), "content": _text(content)}
            if isinstance(content, list):
                calls = [b for b in content if isinstance(b, dict) and b.get("type") == "tool_use"]
                if calls:
                    entry["tool_calls"] = calls
            msgs.append(entry)
        tools = [t.get("name", "") for t in body.get("tools") or []]
    return ProviderRequest(api=api, model=str(body.get("model", "")), messages=msgs,
                           tools=tools, body=body, headers=headers)


# ---- chat completions --------------------------------------------------------------------
def _usage(req: ProviderRequest, reply: Reply, text: str) -> tuple[int, int]:
    prompt = reply.prompt_tokens if reply.prompt_tokens is not None else \
        sum(estimate(m["content"]) for m in req.messages) + 3
    completion = reply.completion_tokens if reply.completion_tokens is not None else \
        estimate(text) + sum(estimate(args_text(c)) for c in reply.tool_calls)
    return prompt, completion


def _finish(reply: Reply, openai: bool) -> str:
    if reply.finish == "length":
        return "length" if openai else "max_tokens"
    if reply.tool_calls:
        return "tool_calls" if openai else "tool_use"
    return "stop" if openai else "end_turn"


def chat_json(req: ProviderRequest, reply: Reply, token_ids: bool) -> dict[str, Any]:
    text = reply.text or ""
    prompt, completion = _usage(req, reply, text)
    message: dict[str, Any] = {"role": "assistant", "content": reply.text}
    if reply.tool_calls:
        message["tool_calls"] = [{"id": call_id(c, i, "call_"), "type": "function",
                                  "function": {"name": c.name, "arguments": args_text(c)}}
                                 for i, c in enumerate(reply.tool_calls)]
    choice: dict[str, Any] = {"index": 0, "message": message,
                              "finish_reason": _finish(reply, True), "logprobs": None}
    out: dict[str, Any] = {"id": _id("chatcmpl-"), "object": "chat.completion",
                           "created": int(time.time()), "model": req.model or "fake",
                           "choices": [choice],
                           "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                                     "total_tokens": prompt + completion}}
    want_ids = token_ids or req.body.get("return_token_ids")
    if want_ids or req.body.get("logprobs"):
        words = text.split() or [text]
        choice["logprobs"] = {"content": [
            {"token": w, "logprob": -0.01 * (i + 1), "bytes": list(w.encode()),
             "top_logprobs": []} for i, w in enumerate(words)]}
    if want_ids:
        out["prompt_token_ids"] = [t for m in req.messages for t in tokens(m["content"])]
        choice["token_ids"] = tokens(text)
    return out


async def chat_stream(req: ProviderRequest, reply: Reply, token_ids: bool) -> AsyncIterator[bytes]:
    full = chat_json(req, reply, token_ids)
    base = {"id": full["id"], "object": "chat.completion.chunk", "created": full["created"],
            "model": full["model"]}

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        data = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish,
                                     **extra}]}
        return b"data: " + json.dumps(data).encode() + b"\n\n"

    yield chunk({"role": "assistant", "content": ""})
    if reply.text:
        words = reply.text.split(" ")
        for i, w in enumerate(words):
            yield chunk({"content": w if i == 0 else " " + w})
    for i, tc in enumerate(full["choices"][0]["message"].get("tool_calls") or []):
        yield chunk({"tool_calls": [{"index": i, "id": tc["id"], "type": "function",
                                     "function": {"name": tc["function"]["name"],
                                                  "arguments": ""}}]})
        args = tc["function"]["arguments"]
        for j in range(0, len(args), 16):
            yield chunk({"tool_calls": [{"index": i, "function": {"arguments": args[j:j + 16]}}]})
    yield chunk({}, full["choices"][0]["finish_reason"])
    if (req.body.get("stream_options") or {}).get("include_usage"):
        data = {**base, "choices": [], "usage": full["usage"]}
        yield b"data: " + json.dumps(data).encode() + b"\n\n"
    yield b"data: [DONE]\n\n"


# ---- responses -----------------------------------------------------------------------------
def responses_json(req: ProviderRequest, reply: Reply) -> dict[str, Any]:
    text = reply.text or ""
    prompt, completion = _usage(req, reply, text)
    output: list[dict[str, Any]] = []
    if reply.text is not None:
        output.append({"type": "message", "id": _id("msg_"), "status": "completed",
                       "role": "assistant",
                       "content": [{"type": "output_text", "text": text, "annotations": []}]})
    for i, c in enumerate(reply.tool_calls):
        output.append({"type": "function_call", "id": _id("fc_"),
                       "call_id": call_id(c, i, "call_"), "name": c.name,
                       "arguments": args_text(c), "status": "completed"})
    incomplete = reply.finish == "length"
    return {"id": _id("resp_"), "object": "response", "created_at": time.time(),
            "status": "incomplete" if incomplete else "completed",
            "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
            "error": None, "model": req.model or "fake", "output": output,
            "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
            "instructions": req.body.get("instructions"), "metadata": {},
            "temperature": 1.0, "top_p": 1.0,
            "usage": {"input_tokens": prompt, "output_tokens": completion,
                      "total_tokens": prompt + completion,
                      "input_tokens_details": {"cached_tokens": 0},
                      "output_tokens_details": {"reasoning_tokens": 0}}}


async def responses_stream(req: ProviderRequest, reply: Reply) -> AsyncIterator[bytes]:
    full = responses_json(req, reply)
    seq = 0

    def event(kind: str, **data: Any) -> bytes:
        nonlocal seq
        seq += 1
        payload = {"type": kind, "sequence_number": seq, **data}
        return f"event: {kind}\ndata: {json.dumps(payload)}\n\n".encode()

    started = {**full, "status": "in_progress", "output": [], "usage": None}
    yield event("response.created", response=started)
    yield event("response.in_progress", response=started)
    for idx, item in enumerate(full["output"]):
        if item["type"] == "message":
            empty = {**item, "status": "in_progress", "content": []}
            yield event("response.output_item.added", output_index=idx, item=empty)
            part = {"type": "output_text", "text": "", "annotations": []}
            yield event("response.content_part.added", item_id=item["id"], output_index=idx,
                        content_index=0, part=part)
            text = item["content"][0]["text"]
            for i, w in enumerate(text.split(" ")):
                yield event("response.output_text.delta", item_id=item["id"], output_index=idx,
                            content_index=0, delta=w if i == 0 else " " + w, logprobs=[])
            yield event("response.output_text.done", item_id=item["id"], output_index=idx,
                        content_index=0, text=text, logprobs=[])
            yield event("response.content_part.done", item_id=item["id"], output_index=idx,
                        content_index=0, part=item["content"][0])
        else:
            yield event("response.output_item.added", output_index=idx,
                        item={**item, "arguments": "", "status": "in_progress"})
            args = item["arguments"]
            for j in range(0, len(args), 16):
                yield event("response.function_call_arguments.delta", item_id=item["id"],
                            output_index=idx, delta=args[j:j + 16])
            yield event("response.function_call_arguments.done", item_id=item["id"],
                        output_index=idx, arguments=args)
        yield event("response.output_item.done", output_index=idx, item=item)
    kind = "response.incomplete" if full["status"] == "incomplete" else "response.completed"
    yield event(kind, response=full)


# ---- anthropic messages ------------------------------------------------------------------------
def messages_json(req: ProviderRequest, reply: Reply) -> dict[str, Any]:
    text = reply.text or ""
    prompt, completion = _usage(req, reply, text)
    content: list[dict[str, Any]] = []
    if reply.text is not None:
        content.append({"type": "text", "text": text})
    for i, c in enumerate(reply.tool_calls):
        args: Any = c.arguments
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except ValueError:
                pass  # malformed on purpose: sent as a string
        content.append({"type": "tool_use", "id": call_id(c, i, "toolu_"), "name": c.name,
                        "input": args})
    return {"id": _id("msg_"), "type": "message", "role": "assistant",
            "model": req.model or "fake", "content": content,
            "stop_reason": _finish(reply, False), "stop_sequence": None,
            "usage": {"input_tokens": prompt, "output_tokens": completion}}


async def messages_stream(req: ProviderRequest, reply: Reply) -> AsyncIterator[bytes]:
    full = messages_json(req, reply)

    def event(kind: str, **data: Any) -> bytes:
        return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n".encode()

    start = {**full, "content": [], "stop_reason": None,
             "usage": {"input_tokens": full["usage"]["input_tokens"], "output_tokens": 1}}
    yield event("message_start", message=start)
    for i, block in enumerate(full["content"]):
        if block["type"] == "text":
            yield event("content_block_start", index=i, content_block={"type": "text", "text": ""})
            for j, w in enumerate(block["text"].split(" ")):
                yield event("content_block_delta", index=i,
                            delta={"type": "text_delta", "text": w if j == 0 else " " + w})
        else:
            yield event("content_block_start", index=i,
                        content_block={"type": "tool_use", "id": block["id"],
                                       "name": block["name"], "input": {}})
            raw = block["input"] if isinstance(block["input"], str) else json.dumps(block["input"])
            for j in range(0, len(raw), 16):
                yield event("content_block_delta", index=i,
                            delta={"type": "input_json_delta", "partial_json": raw[j:j + 16]})
        yield event("content_block_stop", index=i)
    yield event("message_delta", delta={"stop_reason": full["stop_reason"],
                                        "stop_sequence": None},
                usage={"output_tokens": full["usage"]["output_tokens"]})
    yield event("message_stop")


# ---- errors --------------------------------------------------------------------------------------
_ANTHROPIC_TYPES = {400: "invalid_request_error", 401: "authentication_error",
                    403: "permission_error", 404: "not_found_error", 429: "rate_limit_error",
                    500: "api_error", 529: "overloaded_error"}


def error_json(api: str, status: int, message: str) -> dict[str, Any]:
    if api == "messages":
        return {"type": "error", "error": {"type": _ANTHROPIC_TYPES.get(status, "api_error"),
                                           "message": message}}
    default = "server_error" if status >= 500 else "invalid_request_error"
    kind = {429: "rate_limit_exceeded"}.get(status, default)
    return {"error": {"message": message, "type": kind, "param": None, "code": kind}}
