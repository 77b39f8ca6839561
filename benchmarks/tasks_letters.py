"""The benchmark taskset: letter counting over many generated words.

``HUD_RAY_BENCH_TASKS`` sets how many tasks (default 1250, i.e. 10,000 rollouts at group
size 8). The same file runs under the HUD SDK: set ``HUD_RAY_BENCH_IMPORT=hud``.
"""

import os
import random

if os.environ.get("HUD_RAY_BENCH_IMPORT") == "hud":
    from hud import Environment
else:
    from hud_ray import Environment

env = Environment(name="bench-letters")


@env.template()
async def count_letter(word: str = "strawberry", letter: str = "r"):
    answer = yield f"How many '{letter}'s are in '{word}'? Reply with just the number."
    yield 1.0 if answer is not None and answer.strip() == str(word.count(letter)) else 0.0


def words(n: int, seed: int = 7) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    alphabet = "abcdefghijklmnopqrstuvwxyz"
    out, seen = [], set()
    while len(out) < n:
        word = "".join(rng.choice(alphabet) for _ in range(rng.randint(6, 14)))
        letter = rng.choice(word)
        if (word, letter) not in seen:
            seen.add((word, letter))
            out.append((word, letter))
    return out


tasks = [count_letter(word=w, letter=ch)
         for w, ch in words(int(os.environ.get("HUD_RAY_BENCH_TASKS", "1250")))]
