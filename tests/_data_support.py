"""Shared by the training-data tests: a multi-turn tool policy for the local provider,
a small letters taskset with extra columns, and a helper running the eval on Ray."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

from hud_ray.engine import EvalConfig, run_eval_async
from hud_ray.testing import FakeProvider, ProviderRequest, Reply, ToolCall

ROOT = Path(__file__).resolve().parent.parent
WORDS = ("banana", "committee", "strawberry")


class Policy:
    """Turn 0 calls ``think`` (plan ``ok``/``wrong``/``fail`` in its arguments); turn 1
    reasons and calls it again, so the next prompt drops that reasoning (a new segment);
    turn 2 answers, right or wrong by plan. ``fail`` calls an unknown tool twice (an
    ``agent_error`` row). The first conversation of ``banana`` fails; answers alternate
    right and wrong across conversations, so groups have reward variance."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started: dict[str, int] = {}

    def plan_of(self, req: ProviderRequest) -> str:
        for m in req.messages:
            for c in m.get("tool_calls") or ():
                return json.loads(c["function"]["arguments"])["thought"]
        word = req.prompt_text.split("'")[3]
        with self.lock:
            n = self.started[word] = self.started.get(word, -1) + 1
        if word == "banana" and n == 0:
            return "fail"
        return "ok" if n % 2 == 0 else "wrong"

    def __call__(self, req: ProviderRequest) -> Reply:
        plan = self.plan_of(req)
        if plan == "fail":
            return Reply(tool_calls=(ToolCall("nope", {"thought": "fail"}),))
        if req.turn == 0:
            return Reply(tool_calls=(ToolCall("think", {"thought": plan}),), cached_tokens=2)
        if req.turn == 1:
            return Reply(reasoning="count the letters one by one",
                         tool_calls=(ToolCall("think", {"thought": "counting"}),))
        letter, word = req.prompt_text.split("'")[1], req.prompt_text.split("'")[3]
        right = word.count(letter)
        return Reply(text=str(right if plan == "ok" else right + 1))


def tasks_file(tmp_path: Path) -> Path:
    rows = [{"env": "letters", "id": "count_letter", "args": {"word": w, "letter": w[0]},
             "slug": f"count-{w}", "columns": {"difficulty": len(w), "source": "test"}}
            for w in WORDS]
    path = tmp_path / "tasks.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def run_tool_eval(tmp: Path, *, stream: bool = False, **options: Any) -> Path:
    """A real Ray eval: 3 tasks x 4 samples, 3 model turns with tools, token ids on."""
    with FakeProvider(Policy()) as provider:
        cfg = EvalConfig(source=str(tasks_file(tmp)),
                         env_source=str(ROOT / "tasksets/letters.py"),
                         agent="openai_compatible", base_url=provider.base_url, model="m",
                         group_size=4, out=str(tmp / "run"),
                         agent_config={"return_token_ids": True, "think_tool": True,
                                       "stream": stream, "temperature": 0.7,
                                       "top_p": 0.9, "max_steps": 5}, **options)
        return asyncio.run(run_eval_async(config=cfg)).out_dir


_RUNS: dict[str, Path] = {}


def shared_tool_run(tmp_path_factory: Any, **options: Any) -> Path:
    """:func:`run_tool_eval` once per test session per option set (modules share it)."""
    key = json.dumps(options, sort_keys=True)
    if key not in _RUNS:
        _RUNS[key] = run_tool_eval(tmp_path_factory.mktemp("tool-run"), **options)
    return _RUNS[key]
