"""A template that returns without a grade scores 0.0; nothing after the grade runs."""

from hud import Environment

env = Environment(name="compat-nograde")
ran_after_grade = []


@env.template()
async def forgets_to_grade(given: str = ""):
    answer = yield f"Say hi. [[answer: {given}]]"
    if answer == "hi":
        return


@env.template()
async def grades_twice(given: str = ""):
    answer = yield f"Say hi. [[answer: {given}]]"
    yield 1.0 if answer == "hi" else 0.25
    ran_after_grade.append(answer)
    yield 0.0


@env.template()
async def cleanup_in_finally(given: str = ""):
    try:
        answer = yield f"Say hi. [[answer: {given}]]"
        yield 0.75 if answer == "hi" else 0.0
    finally:
        ran_after_grade.clear()


tasks = [
    forgets_to_grade(given="hi"),
    forgets_to_grade(given="bye"),
    grades_twice(given="hi"),
    grades_twice(given="bye"),
    cleanup_in_finally(given="hi"),
]
