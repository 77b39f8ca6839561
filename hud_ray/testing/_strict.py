"""Strict mode: reject what the real APIs reject, with errors shaped like theirs.

Checked per API: unknown parameters, model-specific parameters (``max_tokens`` and
sampling knobs for OpenAI reasoning models, Anthropic thinking budgets), role order,
tool call / result pairing, and that reasoning the provider produced comes back
unchanged when the next turn continues a tool loop (Anthropic thinking blocks with
their signatures, Responses reasoning items, Chat Completions ``reasoning_content`` as
thinking servers such as Moonshot or vLLM reasoning parsers require).

``issued`` maps a tool call id the provider sent to the reasoning text that came with it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hud_ray.testing._anthropic import thinking_enabled
from hud_ray.testing._wire import signature, unseal


@dataclass(frozen=True)
class Rejection:
    status: int
    message: str
    param: str | None = None
    code: str | None = None


_REASONING_MODEL = re.compile(r"^(?:[\w.-]+/)?(?:o\d|gpt-5)", re.IGNORECASE)

CHAT_PARAMS = frozenset({
    "messages", "model", "audio", "frequency_penalty", "function_call", "functions",
    "logit_bias", "logprobs", "max_completion_tokens", "max_tokens", "metadata", "modalities",
    "n", "parallel_tool_calls", "prediction", "presence_penalty", "prompt_cache_key",
    "reasoning_effort", "response_format", "safety_identifier", "seed", "service_tier", "stop",
    "store", "stream", "stream_options", "temperature", "tool_choice", "tools", "top_logprobs",
    "top_p", "user", "verbosity", "web_search_options",
    # vLLM / sglang extensions an OpenAI-compatible server accepts
    "return_token_ids", "top_k", "min_p", "repetition_penalty", "chat_template_kwargs",
    "skip_special_tokens", "include_stop_str_in_output", "separate_reasoning"})
RESPONSES_PARAMS = frozenset({
    "background", "conversation", "include", "input", "instructions", "max_output_tokens",
    "max_tool_calls", "metadata", "model", "parallel_tool_calls", "previous_response_id",
    "prompt", "prompt_cache_key", "reasoning", "safety_identifier", "service_tier", "store",
    "stream", "stream_options", "temperature", "text", "tool_choice", "tools", "top_logprobs",
    "top_p", "truncation", "user"})
MESSAGES_PARAMS = frozenset({
    "max_tokens", "messages", "model", "container", "metadata", "service_tier",
    "stop_sequences", "stream", "system", "temperature", "thinking", "tool_choice", "tools",
    "top_k", "top_p"})


GEMINI_PARAMS = frozenset({"contents", "tools", "toolConfig", "safetySettings",
                           "systemInstruction", "generationConfig", "cachedContent",
                           "labels"})
GEMINI_GENERATION = frozenset({
    "stopSequences", "responseMimeType", "responseSchema", "responseJsonSchema",
    "candidateCount", "maxOutputTokens", "temperature", "topP", "topK", "seed",
    "presencePenalty", "frequencyPenalty", "responseLogprobs", "logprobs", "thinkingConfig",
    "responseModalities", "mediaResolution", "speechConfig"})


def check(api: str, body: dict[str, Any], issued: Mapping[str, str]) -> Rejection | None:
    return {"chat": _chat, "responses": _responses, "messages": _messages,
            "gemini": _gemini}[api](body, issued)


def _openai_unknown(body: dict[str, Any], known: frozenset[str]) -> Rejection | None:
    for key in body:
        if key not in known:
            return Rejection(400, f"Unrecognized request argument supplied: {key}", key)
    return None


def _openai_sampling(body: dict[str, Any]) -> Rejection | None:
    if not _REASONING_MODEL.match(str(body.get("model") or "")):
        return None
    for key in ("temperature", "top_p"):
        if key in body and body[key] not in (None, 1):
            return Rejection(400, f"Unsupported value: '{key}' does not support {body[key]} "
                                  "with this model. Only the default (1) value is supported.",
                             key, "unsupported_value")
    return None


# ---- chat completions -----------------------------------------------------------------------
def _chat(body: dict[str, Any], issued: Mapping[str, str]) -> Rejection | None:
    if bad := _openai_unknown(body, CHAT_PARAMS):
        return bad
    model = str(body.get("model") or "")
    if _REASONING_MODEL.match(model) and "max_tokens" in body:
        return Rejection(400, "Unsupported parameter: 'max_tokens' is not supported with this "
                              "model. Use 'max_completion_tokens' instead.", "max_tokens",
                         "unsupported_parameter")
    if bad := _openai_sampling(body):
        return bad
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return Rejection(400, "Invalid 'messages': empty array. Expected an array with "
                              "minimum length 1.", "messages", "empty_array")
    pending: list[str] = []
    for i, m in enumerate(messages):
        role = m.get("role") if isinstance(m, dict) else None
        if role not in ("system", "developer", "user", "assistant", "tool"):
            return Rejection(400, f"Invalid value: '{role}'. Supported values are: 'system', "
                                  "'developer', 'user', 'assistant' and 'tool'.",
                             f"messages[{i}].role")
        if role == "tool":
            if m.get("tool_call_id") not in pending:
                return Rejection(400, "Invalid parameter: messages with role 'tool' must be a "
                                      "response to a preceding message with 'tool_calls'.",
                                 f"messages.[{i}].role")
            pending.remove(m["tool_call_id"])
            continue
        if pending:
            return _unanswered_chat(pending, i)
        if role == "assistant":
            ids = [c.get("id") for c in m.get("tool_calls") or ()]
            pending = list(ids)
            for cid in ids:
                want = issued.get(cid)
                if want is not None and m.get("reasoning_content") != want:
                    return Rejection(400, "thinking is enabled but reasoning_content is "
                                          "missing or altered in assistant tool call message "
                                          f"at index {i}", f"messages[{i}].reasoning_content")
    if pending:
        return _unanswered_chat(pending, len(messages))
    return None


def _unanswered_chat(pending: list[str], i: int) -> Rejection:
    return Rejection(400, "An assistant message with 'tool_calls' must be followed by tool "
                          "messages responding to each 'tool_call_id'. The following "
                          f"tool_call_ids did not have response messages: {', '.join(pending)}",
                     f"messages.[{i}].role")


# ---- responses -----------------------------------------------------------------------------
def _responses(body: dict[str, Any], issued: Mapping[str, str]) -> Rejection | None:
    if bad := _openai_unknown(body, RESPONSES_PARAMS):
        return bad
    if bad := _openai_sampling(body):
        return bad
    for i, tool in enumerate(body.get("tools") or ()):
        if tool.get("type") == "function" and "strict" not in tool:
            return Rejection(400, f"Missing required parameter: 'tools[{i}].strict'.",
                             f"tools[{i}].strict", "missing_required_parameter")
    items = body.get("input")
    if not isinstance(items, list):
        return None
    store = body.get("store", True) is not False
    calls: dict[str, int] = {}
    answered: set[str] = set()
    reasoning: str | None = None  # the reasoning item since the last output / message
    for i, item in enumerate(items):
        kind = item.get("type", "message")
        if kind == "reasoning":
            enc = item.get("encrypted_content")
            if enc is not None:
                reasoning = unseal(enc)
                if reasoning is None:
                    return Rejection(400, f"The encrypted content for item {item.get('id')} "
                                          "could not be verified.", f"input[{i}]",
                                     "invalid_encrypted_content")
            elif not store:
                return Rejection(404, f"Item with id '{item.get('id')}' not found. Items are "
                                      "not persisted when `store` is set to false. Try again "
                                      "with `store` set to true, or remove this item from "
                                      "your input.", "input")
            else:
                reasoning = "".join(s.get("text", "") for s in item.get("summary") or ())
        elif kind == "function_call":
            cid = item.get("call_id")
            want = issued.get(cid)
            if want is not None and reasoning != want:
                return Rejection(400, f"Item '{item.get('id') or cid}' of type 'function_call' "
                                      "was provided without its required 'reasoning' item.",
                                 f"input[{i}]")
            calls[cid] = i
        elif kind == "function_call_output":
            cid = item.get("call_id")
            if cid not in calls:
                return Rejection(400, "No tool call found for function call output with "
                                      f"call_id {cid}.", "input")
            answered.add(cid)
            reasoning = None
        elif kind == "message":
            reasoning = None if item.get("role") != "assistant" else reasoning
    for cid in calls:
        if cid not in answered:
            return Rejection(400, f"No tool output found for function call {cid}.", "input")
    return None


# ---- anthropic messages ----------------------------------------------------------------------
def _messages(body: dict[str, Any], issued: Mapping[str, str]) -> Rejection | None:
    for key in body:
        if key not in MESSAGES_PARAMS:
            return Rejection(400, f"{key}: Extra inputs are not permitted")
    for key in ("max_tokens", "messages", "model"):
        if key not in body:
            return Rejection(400, f"{key}: Field required")
    thinking = thinking_enabled(body)
    if thinking:
        cfg = body["thinking"]
        budget = cfg.get("budget_tokens")
        if cfg.get("type") == "enabled":
            if not isinstance(budget, int) or budget < 1024:
                return Rejection(400, "thinking.enabled.budget_tokens: Input should be greater "
                                      "than or equal to 1024")
            if body["max_tokens"] <= budget:
                return Rejection(400, "`max_tokens` must be greater than "
                                      "`thinking.budget_tokens`.")
        if body.get("temperature") not in (None, 1):
            return Rejection(400, "`temperature` may only be set to 1 when thinking is "
                                  "enabled.")
        if body.get("top_k") is not None:
            return Rejection(400, "`top_k` is not supported when thinking is enabled.")
        if body.get("top_p") is not None and body["top_p"] < 0.95:
            return Rejection(400, "`top_p` must be between 0.95 and 1 when thinking is "
                                  "enabled.")
    messages = body["messages"]
    if not isinstance(messages, list) or not messages:
        return Rejection(400, "messages: at least one message is required")
    if messages[0].get("role") != "user":
        return Rejection(400, "messages: first message must use the \"user\" role")
    if thinking and (bad := _final_assistant_thinks(messages)):
        return bad
    prev_uses: list[str] = []
    for i, m in enumerate(messages):
        role, content = m.get("role"), m.get("content")
        if role not in ("user", "assistant"):
            return Rejection(400, f"messages.{i}.role: Input should be 'user' or 'assistant'")
        blocks = content if isinstance(content, list) else []
        results = [b.get("tool_use_id") for b in blocks if b.get("type") == "tool_result"]
        for j, rid in enumerate(results):
            if rid not in prev_uses:
                return Rejection(400, f"messages.{i}.content.{j}: unexpected `tool_use_id` "
                                      f"found in `tool_result` blocks: {rid}. Each "
                                      "`tool_result` block must have a corresponding "
                                      "`tool_use` block in the previous message.")
        missing = [u for u in prev_uses if u not in results]
        if missing:
            return Rejection(400, f"messages.{i}: `tool_use` ids were found without "
                                  f"`tool_result` blocks immediately after: "
                                  f"{', '.join(missing)}. Each `tool_use` block must have a "
                                  "corresponding `tool_result` block in the next message.")
        prev_uses = [b.get("id") for b in blocks if b.get("type") == "tool_use"] \
            if role == "assistant" else []
        if role == "assistant":
            if bad := _thinking_blocks(i, blocks, issued):
                return bad
    if prev_uses:
        return Rejection(400, f"messages.{len(messages) - 1}: `tool_use` ids were found "
                              "without `tool_result` blocks immediately after: "
                              f"{', '.join(prev_uses)}.")
    return None


def _thinking_blocks(i: int, blocks: list[dict[str, Any]],
                     issued: Mapping[str, str]) -> Rejection | None:
    thought: str | None = None
    for j, b in enumerate(blocks):
        kind = b.get("type")
        if kind == "thinking":
            if b.get("signature") != signature(str(b.get("thinking"))):
                return Rejection(400, f"messages.{i}.content.{j}: Invalid `signature` in "
                                      "`thinking` block")
            thought = b["thinking"]
        elif kind == "redacted_thinking":
            if unseal(b.get("data")) is None:
                return Rejection(400, f"messages.{i}.content.{j}: Invalid `data` in "
                                      "`redacted_thinking` block")
        elif kind == "tool_use" and b.get("id") in issued and issued[b["id"]] != thought:
            return Rejection(400, f"messages.{i}.content.{j}: the `thinking` block that came "
                                  "with this `tool_use` is missing or altered")
    return None


def _final_assistant_thinks(messages: list[dict[str, Any]]) -> Rejection | None:
    """With thinking on, the assistant turn that opened the current tool loop (the last
    assistant message, when the last user message carries tool results) must start with
    a thinking or redacted_thinking block."""
    last = messages[-1]
    content = last.get("content")
    blocks: list[Any] = content if isinstance(content, list) else []
    if last.get("role") != "user" or not any(b.get("type") == "tool_result" for b in blocks):
        return None
    i = len(messages) - 2
    content = messages[i].get("content")
    first = content[0] if isinstance(content, list) and content else {"type": "text"}
    if first.get("type") not in ("thinking", "redacted_thinking"):
        return Rejection(400, f"messages.{i}.content.0.type: Expected `thinking` or "
                              f"`redacted_thinking`, but found `{first.get('type')}`. With "
                              "thinking enabled, the assistant turn before the latest tool "
                              "results must start with its thinking block.")
    return None


# ---- gemini ---------------------------------------------------------------------------------
def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w[:1].upper() + w[1:] for w in rest)


def _gemini(body: dict[str, Any], issued: Mapping[str, str]) -> Rejection | None:
    for key in body:
        if _camel(key) not in GEMINI_PARAMS:
            return Rejection(400, f'Invalid JSON payload received. Unknown name "{key}": '
                                  "Cannot find field.")
    for key in body.get("generationConfig") or body.get("generation_config") or {}:
        if _camel(key) not in GEMINI_GENERATION:
            return Rejection(400, f'Invalid JSON payload received. Unknown name "{key}" at '
                                  "'generation_config': Cannot find field.")
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        return Rejection(400, "* GenerateContentRequest.contents: contents is not specified")
    open_calls: list[dict[str, Any]] = []
    for i, c in enumerate(contents):
        role = c.get("role", "user")
        if role not in ("user", "model"):
            return Rejection(400, f"Please use a valid role: user, model. (contents[{i}])")
        parts = c.get("parts") or []
        responses = [p for p in parts if "functionResponse" in p]
        calls = [p for p in parts if "functionCall" in p]
        if open_calls and len(responses) != len(open_calls):
            return Rejection(400, "Please ensure that the number of function response parts "
                                  "is equal to the number of function call parts of the "
                                  "function call turn.")
        if responses and not open_calls:
            return Rejection(400, "Please ensure that function response turn comes "
                                  "immediately after a function call turn.")
        open_calls = calls if role == "model" else []
        for j, part in enumerate(calls):
            cid = part["functionCall"].get("id")
            want = issued.get(cid) if cid else None
            if want is None:
                continue
            # the signature rides on the turn's first function call part
            sig = calls[0].get("thoughtSignature")
            if sig is None or unseal(sig) != want:
                return Rejection(400, f"Function call is missing a thought_signature in "
                                      f"functionCall parts (contents[{i}], call {j}: "
                                      f"{part['functionCall'].get('name')}).")
    if open_calls:
        return Rejection(400, "Please ensure that function call turn comes immediately after "
                              "a user turn or after a function response turn.")
    return None
