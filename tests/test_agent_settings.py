"""Typed agent settings (issue 8): typos, bad values and missing keys are one-line
ConfigErrors before Ray starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hud_ray.agents import AgentSettings, create_agent, validate_agent
from hud_ray.agents.settings import SETTINGS, ChatSettings, ClaudeSettings
from hud_ray.errors import ConfigError
from hud_ray.testing import FakeProvider, letters_policy
from hud_ray.types import AgentConfig, AgentContext, AgentSpec, Prompt

KEYS = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY", "HUD_RAY_GATEWAY_KEY",
        "HUD_API_KEY")


@pytest.fixture
def no_keys(monkeypatch):
    for var in KEYS:
        monkeypatch.delenv(var, raising=False)


def test_typo_is_one_line_with_a_suggestion(no_keys):
    with pytest.raises(ConfigError) as info:
        validate_agent("openai_compatible", {"max_step": 3}, base_url="http://x")
    assert str(info.value) == ("agent 'openai_compatible' has no setting 'max_step' "
                               "(did you mean 'max_steps'?)")
    with pytest.raises(ConfigError, match="no setting 'frobnicate'; accepted: "):
        validate_agent("oracle", {"frobnicate": 1})
    with pytest.raises(ConfigError, match=r"setting 'max_steps': .*greater than or equal to 1"):
        validate_agent("nop", {"max_steps": 0})
    with pytest.raises(ConfigError, match="unknown agent 'gpt'"):
        validate_agent("gpt", {})


def test_each_harness_takes_its_own_settings(no_keys):
    s = validate_agent("claude", {"thinking_budget": 2048, "max_tokens": 4096, "stream": True},
                       base_url="http://x")
    assert isinstance(s, ClaudeSettings) and s.thinking_budget == 2048 and s.stream
    assert isinstance(validate_agent("openai_compatible", {"return_token_ids": True},
                                     base_url="http://x"), ChatSettings)
    with pytest.raises(ConfigError, match="has no setting 'return_token_ids'"):
        validate_agent("claude", {"return_token_ids": True}, base_url="http://x")
    with pytest.raises(ConfigError, match="has no setting 'thinking_budget'"):
        validate_agent("openai", {"thinking_budget": 2048}, base_url="http://x")
    # every settings field is documented
    for cls in {*SETTINGS.values()}:
        assert all(f.description for f in cls.model_fields.values()), cls
    assert issubclass(ClaudeSettings, AgentSettings)


def test_missing_provider_key_is_caught_unless_an_endpoint_supplies_one(no_keys, monkeypatch):
    with pytest.raises(ConfigError, match="set ANTHROPIC_API_KEY"):
        validate_agent("claude", {})
    with pytest.raises(ConfigError, match="set OPENAI_API_KEY"):
        validate_agent("openai", {"max_steps": 2})
    with pytest.raises(ConfigError, match="set GEMINI_API_KEY"):
        validate_agent("gemini", {"thinking_budget": 512})
    validate_agent("claude", {}, base_url="http://127.0.0.1:9")  # a local server: no key
    with pytest.raises(ConfigError, match="api_key_env names MY_KEY, which is not set"):
        validate_agent("openai_compatible", {"api_key_env": "MY_KEY"}, base_url="http://x")
    monkeypatch.setenv("HUD_API_KEY", "hud-key-0123456789")
    validate_agent("claude", {})  # through the gateway
    with pytest.raises(ConfigError, match="extended thinking needs the Anthropic API"):
        validate_agent("claude", {"thinking_budget": 2048, "max_tokens": 4096})
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-0123456789")
    validate_agent(AgentSpec(name="claude", config=AgentConfig(max_steps=3)))


def test_run_refuses_before_ray_starts(no_keys, root, tmp_path):
    # in a fresh interpreter: this session's other tests may have Ray up already
    script = f"""
import asyncio, ray
from hud_ray.engine import run_eval_async
from hud_ray.errors import ConfigError

async def main():
    src = {str(root / "tasksets/letters.py")!r}
    for agent, kw, needle in (
            ("openai_compatible", dict(base_url="http://127.0.0.1:9", model="m",
                                       agent_config={{"max_step": 3}}), "did you mean 'max_steps'"),
            ("claude", {{}}, "ANTHROPIC_API_KEY")):
        try:
            await run_eval_async(src, agent, out={str(tmp_path)!r} + "/" + agent, **kw)
        except ConfigError as e:
            assert needle in str(e), e
        else:
            raise SystemExit("no ConfigError for " + agent)
    assert not ray.is_initialized(), "Ray started before the settings were checked"

asyncio.run(main())
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr


def test_cli_prints_one_line(no_keys, root, tmp_path):
    cli = Path(sys.executable).parent / "hud-ray"
    cfg = tmp_path / "agent.yaml"
    cfg.write_text("agent_config:\n  max_step: 3\n")
    out = subprocess.run([str(cli), "eval", str(root / "tasksets/letters.py"),
                          "openai_compatible", "--base-url", "http://127.0.0.1:9", "-c",
                          str(cfg), "--out", str(tmp_path / "c")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "did you mean 'max_steps'" in lines[0], out.stderr


async def test_bad_per_task_override_fails_the_rollout_clearly():
    async with FakeProvider(letters_policy) as p:
        agent = create_agent(AgentSpec(name="openai_compatible", model="m", base_url=p.base_url))
        ctx = AgentContext(prompt=Prompt(session_id="s", text="x",
                                         messages=[{"role": "user", "content": "x"}]),
                           config=AgentConfig.model_validate({"temprature": 0.1}))
        with pytest.raises(ConfigError, match="did you mean 'temperature'"):
            await agent.run(ctx)
        assert p.requests == 0
