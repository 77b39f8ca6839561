"""The ``mcp`` capability: an environment's own MCP tools, served from the sandbox and
offered by every model harness (official SDK clients against the local provider)."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import httpx
import pytest

from hud_ray import read_rollouts
from hud_ray.agents import create_agent
from hud_ray.agents.toolbox import tools_for
from hud_ray.capabilities.mcp_client import MCPClient
from hud_ray.engine import EvalConfig, run_eval_async
from hud_ray.errors import CapabilityError
from hud_ray.sandbox import Sandbox, load_environments
from hud_ray.testing import FakeProvider, ProviderRequest, Reply, ToolCall
from hud_ray.types import AgentConfig, AgentContext, AgentSpec

GAME = Path(__file__).resolve().parent / "fixtures" / "mcp_game.py"
AGENTS = ["openai_compatible", "openai", "claude"]
MOVES = re.compile(r"\[\[moves: (-?\d+)\]\]")
GUESS = re.compile(r"\[\[guess: (-?\d+)\]\]")


def game_policy(req: ProviderRequest) -> Reply:
    """Plays the game: move to the target, guess the secret, then report."""
    if req.turn == 0 and "move" in req.tools:
        steps = int(MOVES.search(req.prompt_text).group(1))
        return Reply(tool_calls=(ToolCall("move", {"steps": steps}),))
    if req.turn == 1:
        value = int(GUESS.search(req.prompt_text).group(1))
        return Reply(text="guessing", tool_calls=(ToolCall("guess", {"value": value}),))
    return Reply(text=f"done ({req.last_text})")


@pytest.fixture
async def sandbox():
    sb = Sandbox(load_environments({"mcp-game": str(GAME)}))
    yield sb
    await sb.close()


@pytest.fixture
async def provider():
    async with FakeProvider(game_policy) as p:
        yield p


async def test_served_on_the_node_address_with_a_per_rollout_token(sandbox):
    env = sandbox.environments["mcp-game"]
    prompt = await sandbox.start(env.templates["play"](secret=7, target=3))
    [cap] = prompt.capabilities
    assert cap.protocol == "mcp/2025-11-25" and cap.url.startswith("http://")
    assert cap.url.endswith("/mcp") and "127.0.0.1" not in cap.url
    assert cap.params["transport"] == "streamable-http" and len(cap.params["auth_token"]) > 30
    tools, cleanup = await tools_for(prompt.capabilities, AgentConfig())
    try:
        by_name = {t.name: t for t in tools}
        assert sorted(by_name) == ["guess", "move"]
        assert by_name["move"].parameters["properties"]["steps"]["type"] == "integer"
        assert await by_name["move"].run({"steps": 3}) == "token at 3"
        assert await by_name["guess"].run({"value": 9}) == "lower"
        assert (await by_name["move"].run({"steps": "x"})).startswith("error:")
        assert await by_name["guess"].run({"value": 7}) == "correct"
    finally:
        await cleanup()
    async with httpx.AsyncClient() as http:  # no token, or a wrong one: refused
        for headers in ({}, {"Authorization": "Bearer nope"}):
            r = await http.post(cap.url, json={}, headers=headers)
            assert r.status_code == 401
    grade = await sandbox.grade(prompt.session_id, "done")
    assert grade.reward == 1.0
    with pytest.raises(CapabilityError, match="cannot connect"):  # the rollout is over
        await MCPClient.connect(cap)


@pytest.mark.parametrize("name", AGENTS)
async def test_each_harness_plays_the_game_through_mcp_tools(sandbox, provider, name):
    env = sandbox.environments["mcp-game"]
    prompt = await sandbox.start(env.templates["play"](secret=2, target=-1))
    url = provider.anthropic_base_url if name == "claude" else provider.base_url
    agent = create_agent(AgentSpec(name=name, model="m", base_url=url))
    try:
        result = await agent.run(AgentContext(prompt=prompt, config=AgentConfig()))
    finally:
        await agent.close()
    assert result.stop_reason == "done" and result.answer == "done (correct)"
    assert [(s["role"], s.get("name"), s["content"]) for s in result.steps
            if s["role"] == "tool"] == [("tool", "move", "token at -1"),
                                        ("tool", "guess", "correct")]
    calls = [c for s in result.steps for c in s.get("tool_calls", [])]
    assert [(c["name"], c["arguments"]) for c in calls] == [("move", {"steps": -1}),
                                                           ("guess", {"value": 2})]
    assert sorted(provider.log[0].tools) == ["guess", "move"]
    assert (await sandbox.grade(prompt.session_id, result.answer)).reward == 1.0


@pytest.mark.ray
async def test_game_on_ray_records_the_calls(ray_session, provider, tmp_path):
    config = EvalConfig(source=str(GAME), agent="claude", base_url=provider.anthropic_base_url,
                        model="m", out=str(tmp_path / "out"), max_retries=0,
                        rollout_timeout=120, group_size=2)
    result = await run_eval_async(config=config)
    rows = [r for r in read_rollouts(result.out_dir).to_pylist() if r["final"]]
    assert len(rows) == 4 and all(r["reward_valid"] and r["reward"] == 1.0 for r in rows)
    for row in rows:
        tools = [s for s in json.loads(row["steps"]) if s["role"] == "tool"]
        assert [t["name"] for t in tools] == ["move", "guess"]
        assert tools[1]["content"] == "correct"


async def test_a_hook_published_daemon_means_one_rollout_at_a_time():
    """State behind a daemon an @env.initialize hook started is shared by the process:
    the sandbox runs that env's rollouts one after another (HUD: one env per container)."""
    from hud_ray import Environment
    from hud_ray.capabilities import Capability

    env = Environment(name="hooked")
    shared = {"n": 0}

    @env.initialize
    async def up():
        env.add_capability(Capability.mcp(name="tools", url="http://127.0.0.1:9/mcp"))

    @env.template()
    async def t():
        shared["n"] += 1
        yield "go"
        yield float(shared["n"])

    sb = Sandbox({env.name: env})
    try:
        first = await sb.start(t())
        assert env.served_capabilities == {"tools"} and env.one_session_at_a_time
        second = asyncio.create_task(sb.start(t()))
        third = asyncio.create_task(sb.start(t()))
        for _ in range(20):
            await asyncio.sleep(0)
        assert not second.done() and sb.active_sessions == 1
        third.cancel()  # a waiter that gives up holds nothing
        assert (await sb.grade(first.session_id, "")).reward == 1.0
        prompt = await asyncio.wait_for(second, 5)
        assert (await sb.grade(prompt.session_id, "")).reward == 2.0
        assert third.cancelled()
        last = await asyncio.wait_for(sb.start(t()), 5)
        await sb.cancel(last.session_id)
    finally:
        await sb.close()


def test_env_mcp_needs_a_server_object():
    from hud_ray import Environment

    with pytest.raises(CapabilityError, match="needs an MCP server object"):
        Environment(name="bad-mcp").mcp(object())


async def test_env_mcp_rollouts_take_turns_in_one_sandbox(sandbox):
    env = sandbox.environments["mcp-game"]
    assert env.stateful and not env.isolates_sessions and env.one_session_at_a_time
    first = await sandbox.start(env.templates["play"]())
    second = asyncio.create_task(sandbox.start(env.templates["play"]()))
    for _ in range(20):
        await asyncio.sleep(0)
    assert not second.done()
    await sandbox.cancel(first.session_id)
    await sandbox.cancel((await asyncio.wait_for(second, 5)).session_id)
