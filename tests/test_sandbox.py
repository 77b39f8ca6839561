"""The sandbox drives templates in-process: prompt and grade forms, and every bad yield."""

from __future__ import annotations

import pytest

from hud_ray import Environment, EvaluationResult, SubScore
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
    cases = {
        "three_yields": (GradeError, "extra_yield"),
        "no_grade": (GradeError, "no_grade"),
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
