from hud_ray import Environment

env = Environment(name="letter-count")

@env.template()
async def count_letter(word: str = "strawberry", letter: str = "r"):
    answer = yield f"How many '{letter}'s are in '{word}'? Reply with just the number."
    yield 1.0 if answer and str(word.count(letter)) in answer else 0.0

@count_letter.solution              # optional: what the `oracle` agent answers
async def _(word: str = "strawberry", letter: str = "r"):
    return str(word.count(letter))

tasks = [count_letter(word=w) for w in ("strawberry", "raspberry", "blueberry")]
