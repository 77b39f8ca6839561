"""A generated taskset of any size: ``HUD_RAY_BENCH_TASKS`` rows, made by a generator.

The module-level ``tasks`` is a generator, so importing this file (as every harness
actor does to find the environment) builds no rows; the driver consumes it once into
the task table. ``HUD_RAY_BENCH_LIST=1`` makes it a list instead (every importer then
builds every row), for comparison.
"""

import os

from hud_ray import Environment

env = Environment(name="bench-generated")


@env.template()
async def count_letter(word: str = "strawberry", letter: str = "r"):
    answer = yield f"How many '{letter}'s are in '{word}'? Reply with just the number."
    yield 1.0 if answer is not None and answer.strip() == str(word.count(letter)) else 0.0


@count_letter.solution
async def _(word: str = "strawberry", letter: str = "r"):
    return str(word.count(letter))


def _word(i: int) -> str:
    """A distinct word per index: base-26 letters of ``i`` plus a fixed tail."""
    out = ""
    while True:
        i, r = divmod(i, 26)
        out += "abcdefghijklmnopqrstuvwxyz"[r]
        if not i:
            return out + "berry"


def _row(i: int):
    task = count_letter(word=_word(i), letter="r")
    # HUD's default slug keeps 8 hex digits of the args hash: at a million rows of one
    # template some collide, so these rows carry their own.
    task.slug = f"count_letter-{i:07d}"
    return task


_N = int(os.environ.get("HUD_RAY_BENCH_TASKS", "1000"))
tasks = (_row(i) for i in range(_N))
if os.environ.get("HUD_RAY_BENCH_LIST") == "1":
    tasks = list(tasks)
