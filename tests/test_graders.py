from __future__ import annotations

import pytest

from hud_ray.errors import GradeError
from hud_ray.graders import (
    EvaluationResult,
    Grader,
    SubScore,
    combine,
    combine_all,
    combine_any,
    contains,
    contains_all,
    contains_any,
    exact_match,
    f1_score,
    normalize,
    numeric_match,
)


def test_text_helpers():
    assert normalize("The  Cat, sat!") == "cat sat"
    assert exact_match("Paris.", "paris") == 1.0
    assert exact_match("Paris.", "paris", normalize_text=False) == 0.0
    assert contains("Hello World", "world") == 1.0
    assert contains("Hello World", "world", case_sensitive=True) == 0.0
    assert contains_any("abc", ["x", "b"]) == 1.0 and contains_all("abc", ["a", "x"]) == 0.0
    assert numeric_match("There are 3 r's", 3) == 1.0
    assert numeric_match("1,234.5 units", 1234.5) == 0.0  # HUD reads "1,234.5" as 1
    assert numeric_match("1234.5 units", 1234.5) == 1.0
    assert numeric_match("about 3.1", 3, tolerance=0.2) == 1.0
    assert numeric_match(None, 0) == 0.0 and numeric_match("none", 0) == 0.0
    assert normalize("1,234") == "1 234" and exact_match("1,234", "1234") == 0.0
    assert exact_match("PARIS ", "paris", normalize_text=False) == 1.0
    assert f1_score("", "") == 0.0
    assert f1_score("the cat sat", "cat sat down") == pytest.approx(0.8)


async def test_combine_weights_and_penalties():
    async def later():
        return SubScore(name="async", value=1.0, weight=1.0)

    result = await combine(SubScore(name="a", value=1.0, weight=3.0), later(),
                           SubScore(name="p", value=1.0, weight=-1.0))
    # positive weights normalise to 3/4 + 1/4; the penalty counts as written
    assert result.reward == pytest.approx(0.0)
    assert [s.name for s in result.subscores] == ["a", "async", "p"]
    assert combine_any(1.0, [SubScore(name="x", value=0), SubScore(name="y", value=1)]).value == 1
    assert combine_all(1.0, [SubScore(name="x", value=0), SubScore(name="y", value=1)]).value == 0
    with pytest.raises(ValueError):
        SubScore(name="n", value=float("nan"))
    with pytest.raises(GradeError):
        await combine(SubScore(name="z", value=1.0, weight=-1.0))


async def test_combine_matches_hud_weights_above_one_and_negative_totals():
    result = await combine(SubScore(name="a", value=1.0, weight=2.0),
                           SubScore(name="b", value=0.0, weight=2.0))
    assert result.reward == 0.5
    assert [s.weight for s in result.subscores] == [0.5, 0.5]
    neg = await combine(SubScore(name="a", value=0.0, weight=1.0),
                        SubScore(name="cheat", value=1.0, weight=-0.5))
    assert neg.reward == -0.5
    dup = await combine(SubScore(name="x", value=1.0, weight=0.5),
                        SubScore(name="x", value=0.0, weight=0.5),
                        SubScore(name="x-1", value=1.0, weight=0.0))
    assert [s.name for s in dup.subscores] == ["x-2", "x-3", "x-1"]


def test_subscore_metadata_alias_and_result_fields():
    s = SubScore(name="m", value=0.5, metadata={"k": 1})
    assert s.info == {"k": 1} and s.metadata == {"k": 1}
    s.metadata = {"k": 2}
    assert s.info == {"k": 2}
    r = EvaluationResult(reward=1.0, content="why", isError=False, extra_key="kept")
    assert r.model_dump()["extra_key"] == "kept" and r.content == "why"


async def test_grader_subclass_contract():
    class Length(Grader):
        name = "length"

        @classmethod
        async def compute_score(cls, text: str = "", **_):
            return min(1.0, len(text) / 10), {"chars": len(text)}

    s = await Length.grade(weight=0.3, text="hello")
    assert (s.name, s.value, s.weight) == ("length", 0.5, 0.3)
    assert s.info == {"chars": 5, "_parameters": {"text": "hello"}}
    named = await Length.grade(weight=1.0, name="len2", text="x" * 20)
    assert (named.name, named.value) == ("len2", 1.0)
    with pytest.raises(NotImplementedError):
        await Grader.grade(weight=1.0)


async def test_llm_judge_on_the_local_provider(monkeypatch):
    import json

    from hud_ray.errors import ConfigError
    from hud_ray.graders import LLMJudgeGrader
    from hud_ray.graders.judge import parse_verdict
    from hud_ray.testing import FakeProvider, Reply

    seen = []

    def judge(req):
        user = req.messages[-1]["content"]
        seen.append(req.messages[0]["role"])
        criterion = user.split("<criterion>\n")[1].split("\n</criterion>")[0]
        response = user.split("<response>\n")[1].split("\n</response>")[0]
        status = "MET" if criterion.lower() in response.lower() else "UNMET"
        return Reply(json.dumps({"criterion_status": status, "explanation": "substring"}))

    with FakeProvider(judge) as p:
        s = await LLMJudgeGrader.grade(weight=0.5, answer="Paris, France; not London",
                                       criteria=["paris", ("france", 2.0), ("london", -1.0)],
                                       base_url=p.base_url)
    assert s.weight == 0.5 and s.name == "LLMJudgeGrader"
    assert s.value == pytest.approx((1 + 2 - 1) / 3)
    assert [c.value for c in s.children] == [1.0, 1.0, 1.0] and seen == ["system"] * 3
    assert (await LLMJudgeGrader.grade(weight=1.0, criteria=[])).value == 0.0
    assert parse_verdict("```json\n{\"criterion_status\": \"UNMET\"}\n```")[0] is False
    assert parse_verdict("Verdict: NOT MET")[0] is False and parse_verdict("MET")[0] is True
    with pytest.raises(GradeError, match="no MET/UNMET"):
        parse_verdict("maybe")
    for var in ("HUD_RAY_JUDGE_BASE_URL", "HUD_RAY_GATEWAY_KEY", "HUD_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ConfigError, match="no endpoint"):
        await LLMJudgeGrader.grade(weight=1.0, answer="x", criteria=["y"])
