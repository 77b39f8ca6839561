"""combine() with weights above 1 and negative penalties, in one tasks.py."""

from hud import Environment
from hud.graders import SubScore, combine, exact_match

env = Environment(name="compat-combine")


@env.template()
async def weighted(expected: str, given: str = ""):
    answer = yield f"Say {expected}. [[answer: {given}]]"
    yield await combine(
        SubScore(name="correct", value=exact_match(answer, expected), weight=2.0),
        SubScore(name="short", value=1.0 if len(answer) < 4 else 0.0, weight=2.0),
        SubScore(name="shouted", value=1.0 if answer.isupper() else 0.0, weight=-0.5),
    )


@env.template()
async def penalty_only_loses(given: str = ""):
    answer = yield f"Never say yes. [[answer: {given}]]"
    yield await combine(
        SubScore(name="answered", value=0.0, weight=1.0),
        SubScore(name="said_yes", value=1.0 if "yes" in answer.lower() else 0.0, weight=-0.5),
    )


tasks = [
    weighted(expected="cat", given="cat"),        # 0.5 + 0.5
    weighted(expected="cat", given="a cat"),      # 0.5 (articles drop) + 0
    weighted(expected="cat", given="CAT"),        # 1.0 - 0.5
    weighted(expected="cat", given="dog"),        # 0.5
    penalty_only_loses(given="yes"),              # -0.5
    penalty_only_loses(given="no"),               # 0.0
]
