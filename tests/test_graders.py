from __future__ import annotations

import pytest

from hud_ray.errors import GradeError
from hud_ray.graders import (
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
    assert numeric_match("1,234.5 units", 1234.5) == 1.0
    assert numeric_match("about 3.1", 3, tolerance=0.2) == 1.0
    assert numeric_match(None, 0) == 0.0 and numeric_match("none", 0) == 0.0
    assert f1_score("the cat sat", "cat sat down") == pytest.approx(0.8)


async def test_combine_weights_and_penalties():
    async def later():
        return SubScore(name="async", value=1.0, weight=1.0)

    result = await combine(SubScore(name="a", value=1.0, weight=3.0), later(),
                           SubScore(name="p", value=1.0, weight=-1.0))
    assert result.reward == pytest.approx((3 + 1 - 1) / 4)
    assert [s.name for s in result.subscores] == ["a", "async", "p"]
    assert combine_any(1.0, [SubScore(name="x", value=0), SubScore(name="y", value=1)]).value == 1
    assert combine_all(1.0, [SubScore(name="x", value=0), SubScore(name="y", value=1)]).value == 0
    with pytest.raises(GradeError):
        await combine(SubScore(name="n", value=float("nan")))
