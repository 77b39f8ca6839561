"""returns= parses the agent's answer into the declared type (HUD's Answer[T])."""

from hud import Environment
from pydantic import BaseModel

env = Environment(name="compat-returns")


class Point(BaseModel):
    x: int
    y: int


@env.template(returns=int)
async def number(given: str = ""):
    answer = yield f"Give 42. [[answer: {given}]]"
    yield 1.0 if answer.content == 42 else (0.5 if answer.raw.strip() == "42.0" else 0.0)


@env.template(returns=Point)
async def point(given: str = ""):
    answer = yield f"Give the point (1, 2) as JSON. [[answer: {given}]]"
    if isinstance(answer.content, Point):
        yield 1.0 if (answer.content.x, answer.content.y) == (1, 2) else 0.25
    else:
        yield 0.0


@env.template(returns=list[str])
async def words(given: str = ""):
    answer = yield f"List two words. [[answer: {given}]]"
    yield 1.0 if isinstance(answer.content, list) and len(answer.content) == 2 else 0.0


tasks = [
    number(given="42"),
    number(given="forty-two"),
    number(given="42.0"),
    point(given='{"x": 1, "y": 2}'),
    point(given='{"x": 2, "y": 2}'),
    point(given="(1, 2)"),
    words(given='["a", "b"]'),
    words(given="a b"),
]
