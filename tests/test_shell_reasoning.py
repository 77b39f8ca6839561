"""tasksets/shell.py on Ray with each model harness, streamed and not, reasoning on, and
real bash tool calls in a sandbox, against the strict local provider."""

from __future__ import annotations

import dataclasses
import json

import pytest

from hud_ray import read_rollouts
from hud_ray.capabilities.isolation import bwrap_available
from hud_ray.engine import EvalConfig, run_eval_async
from hud_ray.testing import FakeProvider, ProviderRequest, Reply
from tests.test_shell_taskset import bash_policy

pytestmark = [pytest.mark.ray,
              pytest.mark.skipif(not bwrap_available(), reason="needs bubblewrap")]

HARNESSES = {
    "claude": ("claude-sonnet-4-6", {"thinking_budget": 1024, "max_tokens": 2048}),
    "openai": ("o4-mini", {"reasoning_effort": "low"}),
    "openai_compatible": ("qwen3-thinking", {}),
    "gemini": ("gemini-3-pro-preview", {"thinking_budget": 1024}),
}


def thinking_bash(req: ProviderRequest) -> Reply:
    return dataclasses.replace(bash_policy(req), reasoning=f"plan for turn {req.turn}")


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "plain"])
@pytest.mark.parametrize("name", list(HARNESSES))
async def test_reasoning_tool_loop_solves_shell_tasks(ray_session, tmp_path, root, name,
                                                      stream):
    model, settings = HARNESSES[name]
    with FakeProvider(thinking_bash) as p:
        url = {"claude": p.anthropic_base_url, "gemini": p.gemini_base_url}.get(name, p.base_url)
        cfg = EvalConfig(source=str(root / "tasksets/shell.py"), agent=name, model=model,
                         base_url=url, agent_config={"stream": stream, **settings},
                         task_ids=["fix_script", "find_failed_order"], out=str(tmp_path / name))
        result = await run_eval_async(config=cfg)
        rejected = {k: v for k, v in p.stats.items() if ":strict:" in k}
    rows = read_rollouts(result.out_dir).to_pylist()
    assert len(rows) == 3 and not rejected, rejected  # fix_script has two variants
    assert all(r["status"] == "ok" and r["reward"] == 1.0 for r in rows), \
        [(r["slug"], r["status"], r["error_message"]) for r in rows]
    for r in rows:
        steps = json.loads(r["steps"])
        assert r["model_calls"] == 2 and steps[1]["role"] == "tool"
        assert [s.get("reasoning") for s in steps if s["role"] == "assistant"] == \
            ["plan for turn 0", "plan for turn 1"]
