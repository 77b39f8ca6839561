"""Row args are coerced to the annotated parameter types ("3" -> 3)."""

from __future__ import annotations

from hud import Environment

env = Environment(name="compat-coerce")


@env.template()
async def add(a: int, b: int, given: str = ""):
    answer = yield f"What is {a} + {b}? [[answer: {given}]]"
    yield 1.0 if isinstance(a, int) and answer.strip() == str(a + b) else 0.0


@env.template()
async def scale(factor: float, items: list[int], flag: bool = False, given: str = ""):
    answer = yield f"Scale {items} by {factor}. [[answer: {given}]]"
    ok = isinstance(factor, float) and all(isinstance(i, int) for i in items)
    yield (1.0 if ok else 0.0) * (1.0 if flag is True else 0.5)


@env.template()
async def untyped(value, given: str = ""):
    yield f"Echo. [[answer: {given}]]"
    yield 1.0 if value == "7" else 0.0


tasks = [
    add(a="3", b="4", given="7"),              # coerced: 3 + 4
    add(a=3, b=4, given="7"),
    add(a="x", b="4", given="7"),              # cannot coerce: stays "x", scores 0
    scale(factor="2", items="[1, 2]", flag="true"),
    scale(factor=2, items=["1", "2"]),
    untyped(value="7"),
]
