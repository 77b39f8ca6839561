"""The Gemini ``generateContent`` wire format (Google AI API, ``v1beta``), as a JSON body
and as the ``streamGenerateContent?alt=sse`` event stream.

Thinking: a reply's ``reasoning`` is sent as a ``thought`` part when the request asks for
``includeThoughts``, and a ``thoughtSignature`` rides on the first function call part
(or the last part when there is no call), as Gemini 3 models send them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from hud_ray.testing._wire import dumps, pieces, reasoning_tokens, seal, usage
from hud_ray.testing.policy import ProviderRequest, Reply


def include_thoughts(body: dict[str, Any]) -> bool:
    gen = body.get("generationConfig") or body.get("generation_config") or {}
    cfg = gen.get("thinkingConfig") or gen.get("thinking_config") or {}
    # proto JSON: field names in lowerCamelCase or their original snake_case
    return bool(cfg.get("includeThoughts", cfg.get("include_thoughts")))


def _parts(req: ProviderRequest, reply: Reply) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    if reply.reasoning is not None and include_thoughts(req.body):
        parts.append({"text": reply.reasoning, "thought": True})
    if reply.text is not None:
        parts.append({"text": reply.text})
    for call in reply.tool_calls:
        if not isinstance(call.arguments, dict):
            continue  # Gemini reports these as MALFORMED_FUNCTION_CALL (see _finish)
        parts.append({"functionCall": {"id": call.id, "name": call.name,
                                       "args": call.arguments}})
    if reply.reasoning is not None:
        at = next((p for p in parts if "functionCall" in p), parts[-1] if parts else None)
        if at is None:
            parts.append(at := {"text": ""})
        at["thoughtSignature"] = seal(reply.reasoning)
    return parts


def _finish(reply: Reply) -> str:
    if any(not isinstance(c.arguments, dict) for c in reply.tool_calls):
        return "MALFORMED_FUNCTION_CALL"
    return "MAX_TOKENS" if reply.finish == "length" else "STOP"


def _usage(req: ProviderRequest, reply: Reply) -> dict[str, Any]:
    prompt, completion = usage(req, reply)
    thoughts = reasoning_tokens(reply)
    return {"promptTokenCount": prompt, "candidatesTokenCount": completion - thoughts,
            "thoughtsTokenCount": thoughts, "cachedContentTokenCount": reply.cached_tokens,
            "totalTokenCount": prompt + completion}


def _response(req: ProviderRequest, parts: list[dict[str, Any]], finish: str | None,
              use: dict[str, Any] | None) -> dict[str, Any]:
    cand: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish:
        cand["finishReason"] = finish
    out: dict[str, Any] = {"candidates": [cand], "modelVersion": req.model or "fake",
                           "responseId": "fake"}
    if use is not None:
        out["usageMetadata"] = use
    return out


def gemini_json(req: ProviderRequest, reply: Reply) -> bytes:
    return dumps(_response(req, _parts(req, reply), _finish(reply), _usage(req, reply))).encode()


def gemini_stream(req: ProviderRequest, reply: Reply) -> Iterator[bytes]:
    """One chunk per text piece (thoughts first), one per function call, and the finish
    reason with usage on the last chunk."""
    parts = _parts(req, reply)
    chunks: list[list[dict[str, Any]]] = []
    for part in parts:
        if part.get("text"):
            bits = pieces(part["text"])
            for i, bit in enumerate(bits):
                piece = {**part, "text": bit}
                if i < len(bits) - 1:
                    piece.pop("thoughtSignature", None)
                chunks.append([piece])
        else:
            chunks.append([part])
    for i, chunk in enumerate(chunks):
        last = i == len(chunks) - 1
        body = _response(req, chunk, _finish(reply) if last else None,
                         _usage(req, reply) if last else None)
        yield b"data: " + dumps(body).encode() + b"\r\n\r\n"
    if not chunks:
        yield b"data: " + dumps(_response(req, [], _finish(reply), _usage(req, reply))).encode() \
            + b"\r\n\r\n"
