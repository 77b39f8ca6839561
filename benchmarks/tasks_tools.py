"""The latency-bound taskset: letter counting where the agent also has a ``think`` tool,
so a provider scripted to call it makes every rollout several model turns long."""

import os

from benchmarks.tasks_letters import count_letter, env, words  # noqa: F401

tasks = [count_letter(word=w, letter=ch)
         for w, ch in words(int(os.environ.get("HUD_RAY_BENCH_TASKS", "2000")), seed=11)]
