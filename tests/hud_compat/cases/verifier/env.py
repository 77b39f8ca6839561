"""An environment whose rows carry an agent-less verifier task."""

from hud import Environment

env = Environment(name="compat-verifier")


@env.template()
async def solve(target: str, given: str = ""):
    answer = yield f"Say {target}. [[answer: {given}]]"
    yield 1.0 if answer == target else 0.0


@env.template()
async def audit(strict: bool = False):
    frame = yield "audit the actor's grade"
    score = frame.get("score", 0.0) if isinstance(frame, dict) else 0.0
    yield score * (0.5 if strict else 0.8)
