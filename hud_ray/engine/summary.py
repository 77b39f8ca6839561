"""Run summaries: per-task mean reward, pass@k, errors; totals and throughput."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa


@dataclass
class TaskStats:
    slug: str
    rollouts: int = 0
    valid: int = 0
    reward_sum: float = 0.0
    passes: int = 0
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def mean_reward(self) -> float | None:
        return self.reward_sum / self.valid if self.valid else None

    @property
    def pass_at_k(self) -> float:
        return 1.0 if self.passes else 0.0


def summarize(table: pa.Table, *, group_size: int, pass_threshold: float,
              elapsed_s: float, run_id: str, new_rows: int) -> dict[str, Any]:
    """Summarise the final rows of a run directory (all attempts count as rows)."""
    cols = table.select(["slug", "final", "reward", "reward_valid", "status"]).to_pydict()
    stats: dict[str, TaskStats] = {}
    statuses: Counter[str] = Counter()
    attempts = len(cols["slug"])
    for slug, final, reward, valid, status in zip(cols["slug"], cols["final"], cols["reward"],
                                                  cols["reward_valid"], cols["status"],
                                                  strict=True):
        if not final:
            continue
        st = stats.setdefault(slug, TaskStats(slug))
        st.rollouts += 1
        statuses[status] += 1
        if valid and reward is not None:
            st.valid += 1
            st.reward_sum += reward
            if reward >= pass_threshold:
                st.passes += 1
        else:
            st.errors[status] += 1
    rollouts = sum(s.rollouts for s in stats.values())
    valid = sum(s.valid for s in stats.values())
    rewards = sum(s.reward_sum for s in stats.values())
    tasks = list(stats.values())
    per_task = [{"slug": s.slug, "rollouts": s.rollouts, "mean_reward": s.mean_reward,
                 "pass_at_k": s.pass_at_k, "errors": dict(s.errors)} for s in tasks]
    by_status: defaultdict[str, int] = defaultdict(int, statuses)
    return {
        "run_id": run_id,
        "rollouts": rollouts,
        "attempt_rows": attempts,
        "valid": valid,
        "mean_reward": rewards / valid if valid else None,
        f"pass@{group_size}": (sum(s.pass_at_k for s in tasks) / len(tasks)) if tasks else None,
        "pass@1": (sum(s.passes for s in tasks) / rollouts) if rollouts else None,
        "status": dict(by_status),
        "ok": by_status["ok"],
        "errors": rollouts - by_status["ok"],
        # Every rollout failed: the CLI exits non-zero (a broken setup, not a score).
        "all_failed": rollouts > 0 and by_status["ok"] == 0,
        "elapsed_s": round(elapsed_s, 3),
        "rollouts_per_s": round(new_rows / elapsed_s, 2) if elapsed_s > 0 else None,
        "group_size": group_size,
        "tasks": per_task,
    }
