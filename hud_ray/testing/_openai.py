"""OpenAI wire formats: Chat Completions (plus vLLM's token-id extensions) and Responses,
as JSON bodies and as server-sent event streams."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from hud_ray.testing._wire import (
    args_text,
    completion_pieces,
    dumps,
    new_id,
    now,
    pieces,
    prompt_token_ids,
    reasoning_tokens,
    seal,
    token_id,
    usage,
    wants_token_ids,
)
from hud_ray.testing.policy import ProviderRequest, Reply


def _finish(reply: Reply) -> str:
    if reply.finish == "length":
        return "length"
    return "tool_calls" if reply.tool_calls else "stop"


def _logprob(piece: str) -> dict[str, Any]:
    """A deterministic, always negative logprob entry for one token."""
    return {"token": piece, "logprob": -((token_id(piece) % 997) + 1) / 1000,
            "bytes": list(piece.encode()), "top_logprobs": []}


def _calls(reply: Reply) -> list[dict[str, Any]]:
    return [{"id": c.id or new_id("call_"), "type": "function",
             "function": {"name": c.name, "arguments": args_text(c)}} for c in reply.tool_calls]


def _chat_usage(req: ProviderRequest, reply: Reply) -> dict[str, Any]:
    prompt, completion = usage(req, reply)
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": reply.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": reasoning_tokens(reply),
                                          "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0,
                                          "rejected_prediction_tokens": 0}}


# ---- chat completions ---------------------------------------------------------------------------
def chat_json(req: ProviderRequest, reply: Reply, token_ids: bool) -> bytes:
    ids = wants_token_ids(req, token_ids)
    message: dict[str, Any] = {"role": "assistant", "content": reply.text, "refusal": None}
    if reply.reasoning is not None:
        message["reasoning_content"] = reply.reasoning
    if reply.tool_calls:
        message["tool_calls"] = _calls(reply)
    choice: dict[str, Any] = {"index": 0, "message": message, "logprobs": None,
                              "finish_reason": _finish(reply)}
    out: dict[str, Any] = {"id": new_id("chatcmpl-"), "object": "chat.completion",
                           "created": now(), "model": req.model or "fake",
                           "system_fingerprint": None, "choices": [choice],
                           "usage": _chat_usage(req, reply)}
    if ids or req.body.get("logprobs"):
        toks = completion_pieces(reply)
        choice["logprobs"] = {"content": [_logprob(p) for p in toks], "refusal": None}
        if ids:
            choice["token_ids"] = [token_id(p) for p in toks]
            out["prompt_token_ids"] = prompt_token_ids(req)
    return dumps(out).encode()


def chat_stream(req: ProviderRequest, reply: Reply, token_ids: bool) -> Iterator[bytes]:
    """One chunk per token: the role, text pieces, each tool call's head then its argument
    pieces, the finish reason, and a usage chunk when ``stream_options.include_usage``."""
    ids = wants_token_ids(req, token_ids)
    logprobs = ids or bool(req.body.get("logprobs"))
    with_usage = bool((req.body.get("stream_options") or {}).get("include_usage"))
    base = (f'{{"id":"{new_id("chatcmpl-")}","object":"chat.completion.chunk",'
            f'"created":{now()},"model":{dumps(req.model or "fake")},'
            f'"system_fingerprint":null,').encode()
    tail = b',"usage":null}\n\n' if with_usage else b"}\n\n"

    def chunk(delta: dict[str, Any], piece: str | None = None, finish: str | None = None,
              extra: str = "") -> bytes:
        choice: dict[str, Any] = {"index": 0, "delta": delta, "logprobs": None,
                                  "finish_reason": finish}
        if piece is not None:
            if logprobs:
                choice["logprobs"] = {"content": [_logprob(piece)], "refusal": None}
            if ids:
                choice["token_ids"] = [token_id(piece)]
        elif ids:
            choice["token_ids"] = []
        return b"data: " + base + f'{extra}"choices":[{dumps(choice)}]'.encode() + tail

    first = {"role": "assistant", "content": "" if reply.text is not None else None,
             "refusal": None}
    yield chunk(first, extra=f'"prompt_token_ids":{dumps(prompt_token_ids(req))},' if ids
                else "")
    for piece in pieces(reply.reasoning or ""):
        yield chunk({"reasoning_content": piece}, piece)
    for piece in pieces(reply.text or ""):
        yield chunk({"content": piece}, piece)
    for i, call in enumerate(_calls(reply)):
        fn = call["function"]
        yield chunk({"tool_calls": [{"index": i, "id": call["id"], "type": "function",
                                     "function": {"name": fn["name"], "arguments": ""}}]})
        for piece in pieces(fn["arguments"]):
            yield chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]}, piece)
    yield chunk({}, finish=_finish(reply))
    if with_usage:
        yield (b"data: " + base + b'"choices":[],"usage":'
               + dumps(_chat_usage(req, reply)).encode() + b"}\n\n")
    yield b"data: [DONE]\n\n"


# ---- responses -----------------------------------------------------------------------------------
def _response(req: ProviderRequest, reply: Reply) -> dict[str, Any]:
    body = req.body
    prompt, completion = usage(req, reply)
    output: list[dict[str, Any]] = []
    if reply.reasoning is not None:
        output.append(reasoning_item(req, reply))
    if reply.text is not None:
        output.append({"id": new_id("msg_"), "type": "message", "status": "completed",
                       "role": "assistant",
                       "content": [{"type": "output_text", "text": reply.text,
                                    "annotations": [], "logprobs": []}]})
    for call in _calls(reply):
        output.append({"id": new_id("fc_"), "type": "function_call", "status": "completed",
                       "call_id": call["id"], "name": call["function"]["name"],
                       "arguments": call["function"]["arguments"]})
    incomplete = reply.finish == "length"
    return {"id": new_id("resp_"), "object": "response", "created_at": now(),
            "status": "incomplete" if incomplete else "completed", "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"), "model": req.model or "fake",
            "output": output, "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": body.get("previous_response_id"),
            "temperature": body.get("temperature", 1.0), "top_p": body.get("top_p", 1.0),
            "tool_choice": body.get("tool_choice", "auto"), "tools": body.get("tools") or [],
            "text": {"format": {"type": "text"}}, "truncation": "disabled",
            "metadata": body.get("metadata") or {}, "user": None,
            "usage": {"input_tokens": prompt, "output_tokens": completion,
                      "total_tokens": prompt + completion,
                      "input_tokens_details": {"cached_tokens": reply.cached_tokens,
                                               "cache_write_tokens": 0},
                      "output_tokens_details": {"reasoning_tokens": reasoning_tokens(reply)}}}


def reasoning_item(req: ProviderRequest, reply: Reply) -> dict[str, Any]:
    """A Responses reasoning item: a summary, and the sealed reasoning when the request
    asks for ``reasoning.encrypted_content``."""
    text = reply.reasoning or ""
    item: dict[str, Any] = {"id": new_id("rs_"), "type": "reasoning",
                            "summary": [{"type": "summary_text", "text": text}]}
    if "reasoning.encrypted_content" in (req.body.get("include") or ()):
        item["encrypted_content"] = seal(text)
    return item


def responses_json(req: ProviderRequest, reply: Reply) -> bytes:
    return dumps(_response(req, reply)).encode()


def responses_stream(req: ProviderRequest, reply: Reply) -> Iterator[bytes]:
    """The Responses event sequence: created, in_progress, per output item its added /
    delta / done events, then completed (or incomplete)."""
    full = _response(req, reply)
    seq = -1

    def event(kind: str, **data: Any) -> bytes:
        nonlocal seq
        seq += 1
        return (f"event: {kind}\ndata: "
                f"{dumps({'type': kind, 'sequence_number': seq, **data})}\n\n").encode()

    started = {**full, "status": "in_progress", "incomplete_details": None, "output": [],
               "usage": None}
    yield event("response.created", response=started)
    yield event("response.in_progress", response=started)
    for idx, item in enumerate(full["output"]):
        at = {"item_id": item["id"], "output_index": idx}
        if item["type"] == "reasoning":
            yield event("response.output_item.added", output_index=idx,
                        item={**item, "summary": []})
        elif item["type"] == "message":
            part = item["content"][0]
            yield event("response.output_item.added", output_index=idx,
                        item={**item, "status": "in_progress", "content": []})
            yield event("response.content_part.added", **at, content_index=0,
                        part={**part, "text": ""})
            for piece in pieces(part["text"]):
                yield event("response.output_text.delta", **at, content_index=0, delta=piece,
                            logprobs=[])
            yield event("response.output_text.done", **at, content_index=0, text=part["text"],
                        logprobs=[])
            yield event("response.content_part.done", **at, content_index=0, part=part)
        else:
            yield event("response.output_item.added", output_index=idx,
                        item={**item, "status": "in_progress", "arguments": ""})
            for piece in pieces(item["arguments"]):
                yield event("response.function_call_arguments.delta", **at, delta=piece)
            yield event("response.function_call_arguments.done", **at,
                        arguments=item["arguments"])
        yield event("response.output_item.done", output_index=idx, item=item)
    kind = "response.incomplete" if full["status"] == "incomplete" else "response.completed"
    yield event(kind, response=full)
