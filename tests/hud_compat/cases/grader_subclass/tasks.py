"""Grader subclasses, combine_any/combine_all and duplicate subscore names."""

from hud import Environment
from hud.graders import Grader, SubScore, combine, combine_all, combine_any, contains

env = Environment(name="compat-grader")


class LengthGrader(Grader):
    name = "length"

    @classmethod
    async def compute_score(cls, text: str = "", limit: int = 10, **kwargs):
        return (1.0 if len(text) <= limit else 0.0), {"chars": len(text)}


class VowelGrader(Grader):
    name = "vowels"

    @classmethod
    async def compute_score(cls, text: str = "", **kwargs):
        return sum(ch in "aeiou" for ch in text.lower()) / max(1, len(text))


@env.template()
async def graded(given: str = ""):
    answer = yield f"Say something short. [[answer: {given}]]"
    yield await combine(
        LengthGrader.grade(weight=0.5, text=answer, limit=5),
        VowelGrader.grade(weight=0.25, text=answer),
        SubScore(name="length", value=contains(answer, "a"), weight=0.25),
    )


@env.template()
async def boolean(given: str = ""):
    answer = yield f"Say red or blue. [[answer: {given}]]"
    either = combine_any(0.6, [SubScore(name="c", value=contains(answer, "red")),
                               SubScore(name="c", value=contains(answer, "blue"))])
    both = combine_all(0.4, [SubScore(name="c", value=contains(answer, "red")),
                             SubScore(name="c", value=contains(answer, "blue"))])
    yield await combine(either, both)


tasks = [
    graded(given="aaa"),
    graded(given="strawberry"),
    graded(given="xyz"),
    boolean(given="red"),
    boolean(given="red and blue"),
    boolean(given="green"),
]
