"""Supervised rows: the best rollout of each group as a chat conversation."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any


def _messages(row: dict[str, Any]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [{"role": "user", "content": row.get("prompt") or ""}]
    for step in json.loads(row["steps"]) if row.get("steps") else []:
        role = step.get("role")
        if role == "assistant":
            msg: dict[str, Any] = {"role": "assistant", "content": step.get("content")}
            if step.get("tool_calls"):
                msg["tool_calls"] = [
                    {"id": c.get("id"), "type": "function",
                     "function": {"name": c.get("name"),
                                  "arguments": c["arguments"] if isinstance(c.get("arguments"),
                                                                            str)
                                  else json.dumps(c.get("arguments"))}}
                    for c in step["tool_calls"]]
            messages.append(msg)
        elif role == "tool":
            messages.append({"role": "tool", "tool_call_id": step.get("tool_call_id"),
                             "content": step.get("content")})
    return messages


def sft_rows(groups: Iterable[Any], *, min_reward: float | None = None) -> list[dict[str, Any]]:
    """One chat row per group: its highest-reward valid rollout (ties: lowest sample
    index), if that reward is at least ``min_reward``. Failed rollouts never qualify."""
    out = []
    for group in groups:
        best = None
        for row in group.rows.to_pylist():
            if not row["reward_valid"] or row["reward"] is None:
                continue
            if best is None or row["reward"] > best["reward"]:
                best = row
        if best is None or (min_reward is not None and best["reward"] < min_reward):
            continue
        out.append({"messages": _messages(best), "reward": best["reward"],
                    "trace_id": best["trace_id"], "group_id": best["group_id"],
                    "slug": best["slug"], "model": best.get("model")})
    return out
