"""LLMJudgeGrader with weighted and negative criteria (the judge is the local provider)."""

from hud import Environment
from hud.graders import LLMJudgeGrader, SubScore, combine

env = Environment(name="compat-judge")


@env.template()
async def judged(given: str = ""):
    answer = yield f"Describe Paris. [[answer: {given}]]"
    yield await combine(
        LLMJudgeGrader.grade(weight=0.75, answer=answer, question="Describe Paris.",
                             criteria=["capital", ("france", 2.0), ("london", -1.0)]),
        SubScore(name="nonempty", value=1.0 if answer else 0.0, weight=0.25),
    )


tasks = [
    judged(given="Paris is the capital of France"),
    judged(given="Paris is in France, unlike London"),
    judged(given="a capital city"),
    judged(given=""),
]
