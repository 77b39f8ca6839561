"""HUD's guide layout: the environment and its templates live in env.py."""

from hud import Environment

env = Environment(name="compat-split")


@env.template()
async def count(word: str, letter: str, given: str = ""):
    answer = yield f"How many '{letter}' in '{word}'? [[answer: {given}]]"
    yield 1.0 if answer.strip() == str(word.count(letter)) else 0.0
