"""The Anthropic Messages wire format, as a JSON body and as a server-sent event stream."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from hud_ray.testing._wire import (
    dumps,
    new_id,
    pieces,
    reasoning_tokens,
    seal,
    signature,
    usage,
)
from hud_ray.testing.policy import ProviderRequest, Reply


def _stop_reason(reply: Reply) -> str:
    if reply.finish == "length":
        return "max_tokens"
    return "tool_use" if reply.tool_calls else "end_turn"


def _message(req: ProviderRequest, reply: Reply) -> dict[str, Any]:
    prompt, completion = usage(req, reply)
    content: list[dict[str, Any]] = []
    thinking_tokens = 0
    if thinking_enabled(req.body):
        thinking_tokens = reasoning_tokens(reply)
        if reply.reasoning is not None:
            content.append({"type": "thinking", "thinking": reply.reasoning,
                            "signature": signature(reply.reasoning)})
        if reply.redacted:
            content.append({"type": "redacted_thinking",
                            "data": seal(f"redacted:{reply.reasoning or ''}")})
    if reply.text is not None:
        content.append({"type": "text", "text": reply.text})
    for call in reply.tool_calls:
        args: Any = call.arguments
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except ValueError:
                pass  # malformed on purpose: goes out verbatim, as a string
        content.append({"type": "tool_use", "id": call.id or new_id("toolu_"),
                        "name": call.name, "input": args})
    return {"id": new_id("msg_"), "type": "message", "role": "assistant",
            "model": req.model or "fake", "content": content,
            "stop_reason": _stop_reason(reply), "stop_sequence": None,
            "usage": {"input_tokens": max(0, prompt - reply.cached_tokens),
                      "output_tokens": completion,
                      "output_tokens_details": {"thinking_tokens": thinking_tokens},
                      "cache_creation_input_tokens": 0,
                      "cache_read_input_tokens": reply.cached_tokens,
                      "service_tier": "standard"}}


def thinking_enabled(body: dict[str, Any]) -> bool:
    thinking = body.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")


def messages_json(req: ProviderRequest, reply: Reply) -> bytes:
    return dumps(_message(req, reply)).encode()


def _event(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {dumps({'type': kind, **data})}\n\n".encode()


def messages_stream(req: ProviderRequest, reply: Reply) -> Iterator[bytes]:
    """message_start, ping, per content block its start / deltas / stop, message_delta
    (stop reason and output tokens), message_stop. Tool input streams as the verbatim
    JSON text of the call's arguments, malformed or not."""
    full = _message(req, reply)
    start = {**full, "content": [], "stop_reason": None,
             "usage": {**full["usage"], "output_tokens": 1}}
    yield _event("message_start", {"message": start})
    yield _event("ping", {})
    for i, (block, call) in enumerate(_with_calls(full["content"], reply)):
        if block["type"] == "text":
            yield _event("content_block_start",
                         {"index": i, "content_block": {"type": "text", "text": ""}})
            for piece in pieces(block["text"]):
                yield _event("content_block_delta",
                             {"index": i, "delta": {"type": "text_delta", "text": piece}})
        elif block["type"] == "thinking":
            yield _event("content_block_start", {"index": i, "content_block": {
                "type": "thinking", "thinking": "", "signature": ""}})
            for piece in pieces(block["thinking"]):
                yield _event("content_block_delta", {
                    "index": i, "delta": {"type": "thinking_delta", "thinking": piece}})
            yield _event("content_block_delta", {"index": i, "delta": {
                "type": "signature_delta", "signature": block["signature"]}})
        elif block["type"] == "redacted_thinking":
            yield _event("content_block_start", {"index": i, "content_block": block})
        else:
            yield _event("content_block_start",
                         {"index": i, "content_block": {**block, "input": {}}})
            raw = call if call is not None else dumps(block["input"])
            for piece in pieces(raw):
                yield _event("content_block_delta", {
                    "index": i, "delta": {"type": "input_json_delta", "partial_json": piece}})
        yield _event("content_block_stop", {"index": i})
    yield _event("message_delta", {
        "delta": {"stop_reason": full["stop_reason"], "stop_sequence": None},
        "usage": {"output_tokens": full["usage"]["output_tokens"]}})
    yield _event("message_stop", {})


def _with_calls(blocks: list[dict[str, Any]],
                reply: Reply) -> Iterator[tuple[dict[str, Any], str | None]]:
    """Pair each block with the verbatim argument string of its tool call (if a str)."""
    calls = iter(reply.tool_calls)
    for block in blocks:
        if block["type"] != "tool_use":
            yield block, None
        else:
            args = next(calls).arguments
            yield block, args if isinstance(args, str) else None
