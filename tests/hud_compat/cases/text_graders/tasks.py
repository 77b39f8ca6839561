"""HUD's text graders on numbers with thousands separators, punctuation, articles."""

from hud import Environment
from hud.graders import contains_all, exact_match, f1_score, normalize, numeric_match

env = Environment(name="compat-text")


@env.template()
async def exact(expected: str, given: str = ""):
    answer = yield f"Say {expected}. [[answer: {given}]]"
    yield exact_match(answer, expected)


@env.template()
async def numeric(expected: float, tolerance: float = 0.0, given: str = ""):
    answer = yield f"How many? [[answer: {given}]]"
    yield numeric_match(answer, expected, tolerance=tolerance)


@env.template()
async def overlap(reference: str, given: str = ""):
    answer = yield f"Paraphrase {reference}. [[answer: {given}]]"
    yield round(f1_score(answer, reference), 6)


@env.template()
async def normalised(given: str = ""):
    answer = yield f"Spell it. [[answer: {given}]]"
    yield 1.0 if normalize(answer) == "1 234 apples" else 0.0


@env.template()
async def keywords(given: str = ""):
    answer = yield f"Name both. [[answer: {given}]]"
    yield contains_all(answer, ["Paris", "Rome"])


tasks = [
    exact(expected="1234", given="1,234"),
    exact(expected="1,234", given="1 234"),
    exact(expected="The Answer", given="answer!"),
    numeric(expected=1234, given="1,234"),
    numeric(expected=1, given="1,234"),
    numeric(expected=1234.5, given="about 1234.5 units"),
    numeric(expected=3, tolerance=0.2, given="3.1"),
    overlap(reference="the cat sat", given="cat sat down"),
    overlap(reference="x", given=""),
    normalised(given="1,234 Apples."),
    keywords(given="paris and rome"),
]
