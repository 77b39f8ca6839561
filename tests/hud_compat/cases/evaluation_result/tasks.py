"""Grade forms: EvaluationResult with content/info, a score dict, a bool, metadata=."""

from hud import Environment
from hud.graders import EvaluationResult, SubScore

env = Environment(name="compat-results")


@env.template()
async def result(given: str = ""):
    answer = yield f"Say ok. [[answer: {given}]]"
    ok = answer == "ok"
    yield EvaluationResult(
        reward=0.9 if ok else 0.1, content="checked", info={"answer": answer},
        subscores=[SubScore(name="ok", value=0.9 if ok else 0.1, weight=1.0,
                            metadata={"why": "exact"})])


@env.template()
async def score_dict(given: str = ""):
    answer = yield f"Say ok. [[answer: {given}]]"
    yield {"score": 0.6 if answer == "ok" else 0.2, "info": {"len": len(answer)}}


@env.template()
async def boolean(given: str = ""):
    answer = yield f"Say ok. [[answer: {given}]]"
    yield answer == "ok"


tasks = [result(given="ok"), result(given="no"), score_dict(given="ok"),
         score_dict(given="no"), boolean(given="ok"), boolean(given="no")]
