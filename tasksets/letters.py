"""Letter counting: a generative text taskset with reference solutions.

One template, many tasks: every (word, letter) pair below is a row. The oracle agent
answers with the solution and scores 1.0; ``nop`` answers nothing and scores 0.0.
"""

from hud_ray import Environment
from hud_ray.graders import numeric_match

env = Environment(name="letters")

WORDS = ("strawberry", "raspberry", "blueberry", "mississippi", "bookkeeper", "committee",
         "banana", "assessment")


@env.template(description="Count how often a letter occurs in a word.")
async def count_letter(word: str = "strawberry", letter: str = "r"):
    answer = yield f"How many '{letter}'s are in '{word}'? Reply with just the number."
    yield numeric_match(answer, word.count(letter))


@count_letter.solution
async def _count_letter_solution(word: str = "strawberry", letter: str = "r") -> str:
    return str(word.count(letter))


tasks = [count_letter(word=w, letter=ch) for w in WORDS for ch in sorted(set(w))[:3]]
