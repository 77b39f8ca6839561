"""What the three wire formats share: reading a request body into a
:class:`ProviderRequest`, ids, the fake tokenizer, usage, and error bodies."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import re
import time
import zlib
from typing import Any

from hud_ray.testing.policy import ProviderRequest, Reply, ToolCall

dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

_RUN = os.urandom(4).hex()
_SEQ = itertools.count(1)


def new_id(prefix: str) -> str:
    """Unique for this process: a random run prefix plus a counter (cheaper than uuid4)."""
    return f"{prefix}{_RUN}{next(_SEQ):016x}"


def now() -> int:
    return int(time.time())


# ---- the fake tokenizer ---------------------------------------------------------------------
# A completion is cut into pieces of leading whitespace plus a word, so the pieces join back
# to the exact text (streamed deltas and logprob tokens line up with token ids). A prompt's
# token ids (and so its usage count) render like a chat template: each message's role
# marker, then its words (an assistant message: its text and tool-call arguments cut as
# completions are, so a completion reappears verbatim in the next prompt), then the
# generation marker. Like templates that strip earlier thinking, reasoning is not rendered
# back: a turn with reasoning is followed by a prompt that does not extend prompt +
# completion.
_PIECE = re.compile(r"\s*\S+|\s+")


def pieces(text: str) -> list[str]:
    return _PIECE.findall(text)


def token_id(piece: str) -> int:
    return zlib.crc32(piece.encode()) % 50000


def prompt_token_ids(req: ProviderRequest) -> list[int]:
    ids: list[int] = []
    for m in req.messages:
        ids.append(token_id(f"<|{m['role']}|>"))
        if m["role"] == "assistant":
            ids.extend(token_id(p) for p in pieces(m["content"]))
            for call in m.get("tool_calls") or ():
                ids.extend(token_id(p) for p in pieces(call["function"]["arguments"] or ""))
        else:
            ids.extend(token_id(w) for w in m["content"].split())
    ids.append(token_id("<|assistant|>"))
    return ids


def args_text(call: ToolCall) -> str:
    """Arguments as sent: a ``str`` verbatim, anything else as JSON."""
    return call.arguments if isinstance(call.arguments, str) else dumps(call.arguments)


def completion_pieces(reply: Reply) -> list[str]:
    out = pieces(reply.reasoning or "")
    out.extend(pieces(reply.text or ""))
    for call in reply.tool_calls:
        out.extend(pieces(args_text(call)))
    return out


def usage(req: ProviderRequest, reply: Reply) -> tuple[int, int]:
    """(prompt, completion) token counts: the reply's own, else the fake tokenizer's."""
    prompt = reply.prompt_tokens
    if prompt is None:
        prompt = len(prompt_token_ids(req))
    completion = reply.completion_tokens
    if completion is None:
        completion = len(completion_pieces(reply))
    return prompt, completion


def reasoning_tokens(reply: Reply) -> int:
    return len(pieces(reply.reasoning or ""))


def signature(text: str) -> str:
    """A signature only this provider process can make (thinking blocks, reasoning)."""
    return base64.b64encode(hashlib.sha256(f"{_RUN}:{text}".encode()).digest()).decode()


def seal(text: str) -> str:
    """Opaque, verifiable wrapping of reasoning text (redacted thinking, encrypted content)."""
    return base64.urlsafe_b64encode(dumps({"t": text, "s": signature(text)}).encode()).decode()


def unseal(blob: Any) -> str | None:
    """The text sealed in ``blob``, or None when it was not sealed here or was altered."""
    try:
        data = json.loads(base64.urlsafe_b64decode(str(blob).encode()))
        text = data["t"]
    except (ValueError, TypeError, KeyError):
        return None
    return text if isinstance(text, str) and data.get("s") == signature(text) else None


def wants_token_ids(req: ProviderRequest, always: bool) -> bool:
    return always or bool(req.body.get("return_token_ids"))


# ---- reading requests -------------------------------------------------------------------------
_ROLES = {"developer": "system"}


def _text(content: Any) -> str:
    """Flatten any API's content (string, list of parts/blocks) to its text."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for part in content:
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, dict):
                if "text" in part:
                    out.append(str(part["text"]))
                elif "content" in part:
                    out.append(_text(part["content"]))
                elif "output" in part:
                    out.append(_text(part["output"]))
        return "".join(out)
    return str(content)


def _call(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    if not isinstance(arguments, str):
        arguments = dumps(arguments)
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def _chat_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for m in body.get("messages") or ():
        role = m.get("role", "user")
        entry: dict[str, Any] = {"role": _ROLES.get(role, role), "content": _text(m.get("content"))}
        if m.get("tool_calls"):
            entry["tool_calls"] = [_call(c.get("id"), (c.get("function") or {}).get("name"),
                                         (c.get("function") or {}).get("arguments", ""))
                                   for c in m["tool_calls"]]
        if m.get("tool_call_id"):
            entry["tool_call_id"] = m["tool_call_id"]
        out.append(entry)
    return out


def _responses_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if body.get("instructions"):
        out.append({"role": "system", "content": _text(body["instructions"])})
    items = body.get("input")
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    for item in items or ():
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role", "user")
            out.append({"role": _ROLES.get(role, role), "content": _text(item.get("content"))})
        elif kind in ("function_call", "custom_tool_call"):
            call = _call(item.get("call_id"), item.get("name"),
                         item.get("arguments", item.get("input", "")))
            if out and out[-1]["role"] == "assistant":
                out[-1].setdefault("tool_calls", []).append(call)  # one turn, several items
            else:
                out.append({"role": "assistant", "content": "", "tool_calls": [call]})
        elif kind in ("function_call_output", "custom_tool_call_output"):
            out.append({"role": "tool", "content": _text(item.get("output")),
                        "tool_call_id": item.get("call_id")})
    return out


def _anthropic_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if body.get("system"):
        out.append({"role": "system", "content": _text(body["system"])})
    for m in body.get("messages") or ():
        role, content = m.get("role", "user"), m.get("content")
        if not isinstance(content, list):
            out.append({"role": role, "content": _text(content)})
            continue
        rest = []
        for block in content:
            kind = block.get("type") if isinstance(block, dict) else None
            if kind == "tool_result":
                out.append({"role": "tool", "content": _text(block.get("content")),
                            "tool_call_id": block.get("tool_use_id")})
            else:
                rest.append(block)
        calls = [_call(b.get("id"), b.get("name"), b.get("input", {})) for b in rest
                 if isinstance(b, dict) and b.get("type") == "tool_use"]
        if calls or len(rest) == len(content) or _text(rest):
            entry: dict[str, Any] = {"role": role, "content": _text(rest)}
            if calls:
                entry["tool_calls"] = calls
            out.append(entry)
    return out


def _gemini_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if body.get("systemInstruction"):
        sys_parts = (body["systemInstruction"] or {}).get("parts") or ()
        out.append({"role": "system", "content": "".join(str(p.get("text", ""))
                                                          for p in sys_parts)})
    for c in body.get("contents") or ():
        parts = c.get("parts") or ()
        responses = [p["functionResponse"] for p in parts if "functionResponse" in p]
        for r in responses:
            out.append({"role": "tool", "content": _gemini_result(r.get("response")),
                        "tool_call_id": r.get("id") or r.get("name")})
        text = "".join(str(p.get("text", "")) for p in parts if not p.get("thought"))
        calls = [_call(p["functionCall"].get("id"), p["functionCall"].get("name"),
                       p["functionCall"].get("args", {})) for p in parts if "functionCall" in p]
        if responses and not text and not calls:
            continue
        entry: dict[str, Any] = {"role": "assistant" if c.get("role") == "model" else "user",
                                 "content": text}
        if calls:
            entry["tool_calls"] = calls
        out.append(entry)
    return out


def _gemini_result(response: Any) -> str:
    if isinstance(response, dict) and set(response) <= {"result", "output", "error"}:
        return _text(next(iter(response.values()), ""))
    return dumps(response)


def _tool_names(api: str, body: dict[str, Any]) -> list[str]:
    if api == "gemini":
        return [str(d.get("name")) for t in body.get("tools") or ()
                for d in t.get("functionDeclarations") or ()]
    names = []
    for tool in body.get("tools") or ():
        if api == "chat":
            spec = tool.get("function") or tool.get("custom") or {}
            name = spec.get("name")
        else:
            name = tool.get("name")
        if name:
            names.append(name)
    return names


_READERS = {"chat": _chat_messages, "responses": _responses_messages,
            "messages": _anthropic_messages, "gemini": _gemini_messages}
_GEMINI_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                  404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
                  503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


def parse(api: str, body: dict[str, Any], headers: dict[str, str]) -> ProviderRequest:
    return ProviderRequest(api=api, model=str(body.get("model") or ""),  # type: ignore[arg-type]
                           messages=_READERS[api](body), tools=_tool_names(api, body),
                           body=body, headers=headers)


# ---- errors ------------------------------------------------------------------------------------
_ANTHROPIC_ERRORS = {400: "invalid_request_error", 401: "authentication_error",
                     403: "permission_error", 404: "not_found_error",
                     413: "request_too_large", 429: "rate_limit_error", 500: "api_error",
                     529: "overloaded_error"}
_OPENAI_ERRORS = {401: ("invalid_request_error", "invalid_api_key"),
                  404: ("invalid_request_error", "not_found"),
                  429: ("requests", "rate_limit_exceeded")}


def error_body(api: str, status: int, message: str, param: str | None = None,
               code: str | None = None) -> bytes:
    """An error in the API's own shape, so each SDK raises its matching exception."""
    if api == "gemini":
        return dumps({"error": {"code": status, "message": message,
                                "status": _GEMINI_STATUS.get(status, "UNKNOWN")}}).encode()
    if api == "messages":
        kind = _ANTHROPIC_ERRORS.get(status, "api_error" if status >= 500
                                     else "invalid_request_error")
        return dumps({"type": "error", "error": {"type": kind, "message": message},
                      "request_id": new_id("req_")}).encode()
    kind, default = _OPENAI_ERRORS.get(status, ("server_error" if status >= 500
                                                else "invalid_request_error", None))
    return dumps({"error": {"message": message, "type": kind, "param": param,
                            "code": code or default}}).encode()
