"""The sandbox drives templates in-process: prompt and grade forms, and every bad yield."""

from __future__ import annotations

from pathlib import Path

import pytest

from hud_ray import Environment, EvaluationResult, SubScore
from hud_ray.capabilities.isolation import bwrap_available
from hud_ray.errors import EnvError, GradeError, TemplateError
from hud_ray.sandbox import Sandbox, load_environments, normalise_grade


def make(env):
    return Sandbox({env.name: env})


async def run(sandbox, task, answer):
    prompt = await sandbox.start(task)
    return prompt, await sandbox.grade(prompt.session_id, answer)


async def test_prompt_and_grade_forms():
    env = Environment(name="forms")

    @env.template()
    async def as_text():
        answer = yield "hello"
        yield 1.0 if answer == "hi" else 0.0

    @env.template()
    async def as_messages():
        yield [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
        yield {"score": 0.25, "info": {"why": "partial"}}

    @env.template()
    async def as_dict():
        yield {"prompt": "p", "bindings": [{"name": "x", "protocol": "cdp/1",
                                            "url": "ws://h:1"}]}
        yield EvaluationResult(reward=0.5, subscores=[SubScore(name="a", value=0.5)])

    sb = make(env)
    prompt, grade = await run(sb, as_text(), "hi")
    assert prompt.text == "hello" and grade.reward == 1.0
    prompt, grade = await run(sb, as_messages(), None)
    assert prompt.messages[0]["role"] == "system" and grade.reward == 0.25
    assert grade.info == {"why": "partial"}
    prompt, grade = await run(sb, as_dict(), None)
    assert [c.protocol for c in prompt.capabilities] == ["cdp/1"]
    assert grade.subscores == {"a": 0.5}
    assert sb.active_sessions == 0


async def test_bad_templates_raise_typed_errors(fixtures):
    envs = load_environments({"bad": str(fixtures / "bad_templates.py")})
    sb = Sandbox(envs)
    bad = envs["bad"].templates
    # HUD semantics: no grade scores 0.0; a third yield is never reached
    for name, want in (("three_yields", 1.0), ("no_grade", 0.0)):
        prompt = await sb.start(bad[name]())
        assert (await sb.grade(prompt.session_id, "x")).reward == want, name
    cases = {
        "not_finite": (GradeError, "invalid_reward"),
        "not_numeric": (GradeError, "invalid_reward"),
        "raises_at_grade": (GradeError, "grade_raised"),
    }
    for name, (kind, code) in cases.items():
        prompt = await sb.start(bad[name]())
        with pytest.raises(kind) as info:
            await sb.grade(prompt.session_id, "x")
        assert info.value.code == code, name
    with pytest.raises(EnvError) as info:
        await sb.start(bad["raises_at_start"]())
    assert info.value.code == "template_start_error" and not info.value.retryable
    assert "setup exploded" in str(info.value)
    assert sb.active_sessions == 0


async def test_solution_runs_with_bound_defaults(fixtures):
    envs = load_environments({"bad": str(fixtures / "bad_templates.py")})
    sb = Sandbox(envs)
    prompt = await sb.start(envs["bad"].templates["good"](x=7))
    assert prompt.has_solution
    assert await sb.solve(prompt.session_id) == "7"
    assert (await sb.grade(prompt.session_id, "7")).reward == 1.0


async def test_unknown_template_and_env():
    env = Environment(name="e")
    sb = make(env)
    from hud_ray import Task

    with pytest.raises(TemplateError):
        await sb.start(Task(env="e", id="missing"))
    with pytest.raises(EnvError):
        await sb.start(Task(env="other", id="x"))


def test_normalise_grade_accepts_hud_forms():
    assert normalise_grade(1).reward == 1.0
    assert normalise_grade(True).reward == 1.0
    assert normalise_grade({"reward": 0.5}).reward == 0.5
    with pytest.raises(GradeError):
        normalise_grade({"value": 1})
    with pytest.raises(GradeError):
        normalise_grade(float("inf"))
    with pytest.raises(GradeError):
        normalise_grade(None)
    with pytest.raises(GradeError, match="reported an error"):
        normalise_grade({"score": 1.0, "isError": True, "content": "judge down"})
    kept = normalise_grade(EvaluationResult(reward=0.5, content="why", subscores=[
        SubScore(name="a", value=0.5, weight=1.0, children=[SubScore(name="b", value=1.0)])]))
    assert kept.info["content"] == "why" and kept.info["done"] is True
    assert kept.info["subscore_tree"][0]["children"][0]["name"] == "b"


async def test_hud_template_semantics_aclose_returns_and_coercion(tmp_path):
    env = Environment(name="semantics")
    after = tmp_path / "after-grade"

    @env.template()
    async def closes(marker: str):
        yield "p"
        yield 1.0
        Path(marker).touch()  # HUD closes the generator: this never runs
        yield 0.5

    @env.template()
    async def typed(n: int, ratio: float = 0.5, tags: list[str] | None = None):
        answer = yield f"{n}"
        ok = isinstance(n, int) and n == 3 and ratio == 2.5 and tags == ["a", "b"]
        yield 1.0 if ok and answer == "x" else 0.0

    @env.template(returns=int)
    async def parsed():
        answer = yield "give a number"
        yield 1.0 if answer.content == 42 and answer.raw == "42" else 0.0

    @env.template(returns=int)
    async def unparsed():
        answer = yield "give a number"
        yield 1.0 if answer.content == "forty-two" and answer.raw == "forty-two" else 0.0

    sb = make(env)
    _, grade = await run(sb, closes(marker=str(after)), "a")
    assert grade.reward == 1.0 and not after.exists()
    _, grade = await run(sb, typed(n="3", ratio="2.5", tags='["a", "b"]'), "x")
    assert grade.reward == 1.0
    assert (await run(sb, parsed(), "42"))[1].reward == 1.0
    assert (await run(sb, unparsed(), "forty-two"))[1].reward == 1.0
    assert sb.active_sessions == 0


async def test_dict_bindings_and_mcp_text_blocks():
    from hud_ray.capabilities.base import Capability

    env = Environment(name="bind", capabilities=[Capability("robot", "robot/1", "tcp://h:1")])

    @env.template()
    async def episode():
        yield {"prompt": [{"role": "user", "content": [{"type": "text", "text": "one"},
                                                        {"type": "text", "text": "two"}]}],
               "bindings": {"robot": {"token": "t-1"},
                            "extra": {"protocol": "cdp/1", "url": "ws://h:2"}}}
        yield 1.0

    @env.template()
    async def block():
        yield {"type": "text", "text": "just text"}
        yield 1.0

    sb = make(env)
    prompt, _ = await run(sb, episode(), None)
    caps = {c.name: c for c in prompt.capabilities}
    assert caps["robot"].params == {"token": "t-1"} and caps["extra"].protocol == "cdp/1"
    assert prompt.messages == [{"role": "user", "content": "one\n\ntwo"}]
    assert prompt.text == "one\n\ntwo"
    prompt, _ = await run(sb, block(), None)
    assert prompt.messages == [{"role": "user", "content": "just text"}]
    assert env.capability("robot").params == {}  # the episode's binding stays per-session


async def test_verifier_row_is_the_grade_of_record():
    env = Environment(name="verified")
    seen = []

    @env.template()
    async def actor(x: int = 1):
        yield "answer"
        yield 1.0

    @env.template()
    async def check(expected: str):
        frame = yield "unused"
        seen.append(frame)
        yield 0.25 if frame["score"] == 1.0 else 0.0

    @env.template()
    async def broken():
        yield "answer"
        raise RuntimeError("actor grader crashed")

    sb = make(env)
    task = actor()
    task.verifier = check(expected="y")
    _, grade = await run(sb, task, "a")
    assert grade.reward == 0.25 and seen == [{"score": 1.0}]
    assert grade.info["actor_grade"] == {"score": 1.0}
    bad = broken()
    bad.verifier = check(expected="y")
    _, grade = await run(sb, bad, "a")  # a failed actor grade only informs the verifier
    assert grade.reward == 0.0 and seen[-1]["isError"] is True
    other = actor()
    other.verifier = {"env": "elsewhere", "id": "check"}
    prompt = await sb.start(other)
    with pytest.raises(GradeError) as info:
        await sb.grade(prompt.session_id, "a")
    assert info.value.code == "verifier_env"
    assert sb.active_sessions == 0


@pytest.mark.skipif(not bwrap_available(), reason="needs bubblewrap")
async def test_hud_workspace_root_hooks_and_bash_grader_cwd(tmp_path):
    from hud_ray.graders import BashGrader

    root = tmp_path / "not-yet" / "ws"
    env = Environment(name="hud-ws")
    env.workspace(root)

    @env.initialize
    async def seed():  # registered after the workspace: root exists by now, as in HUD
        (root / "data.txt").write_text("7\n")

    @env.template()
    async def check():
        yield "write 7 into out.txt"
        r = await BashGrader.grade(weight=1.0, command='test "$(cat out.txt)" = "$(cat data.txt)"',
                                   cwd=str(root))
        r2 = await BashGrader.grade(weight=1.0, command=f"test -s {root}/out.txt")
        assert r2.value == r.value
        yield r.value

    sb = make(env)
    prompt = await sb.start(check())
    live_ws = sb._sessions[prompt.session_id].session.resources["shell"]
    (live_ws.path / "out.txt").write_text("7\n")  # what the agent would have done
    assert (await sb.grade(prompt.session_id, None)).reward == 1.0
    prompt = await sb.start(check())  # a fresh copy: the last rollout's out.txt is gone
    assert (await sb.grade(prompt.session_id, None)).reward == 0.0
    await sb.close()
