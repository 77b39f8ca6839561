"""Plan: taskset x group size -> rollout specs, task-major."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator, Set
from dataclasses import dataclass

from hud_ray.records import rollout_key
from hud_ray.task import Taskset


@dataclass(frozen=True, slots=True)
class RolloutSpec:
    """One attempt at one rollout key. ``task_index`` points into the run's task table."""

    task_index: int
    slug: str
    group_id: str
    sample_index: int
    attempt: int
    trace_id: str

    @property
    def key(self) -> str:
        return rollout_key(self.slug, self.sample_index)

    def retry(self) -> RolloutSpec:
        return RolloutSpec(self.task_index, self.slug, self.group_id, self.sample_index,
                           self.attempt + 1, new_trace_id())


def new_trace_id() -> str:
    return uuid.uuid4().hex


def group_id(run_id: str, slug: str) -> str:
    """One id per task per run, shared by the group's repeats (stable across resumes)."""
    return hashlib.sha1(f"{run_id}\0{slug}".encode()).hexdigest()[:16]


def plan(taskset: Taskset, group_size: int, run_id: str, *,
         done: Set[str] = frozenset(),
         attempts: dict[str, int] | None = None) -> list[RolloutSpec]:
    """All rollout specs still to run, task-major (a task's group is contiguous).

    ``done`` holds rollout keys an earlier run already settled; ``attempts`` the last
    attempt number written per key, so a resumed key continues its numbering.
    """
    return list(iter_plan(taskset, group_size, run_id, done=done, attempts=attempts))


def count_plan(taskset: Taskset, group_size: int,
               done: Set[str] = frozenset()) -> int:
    """How many specs :func:`iter_plan` yields, without building them."""
    total = len(taskset) * group_size
    if not done:
        return total
    return sum(1 for slug in taskset.table.slugs() for s in range(group_size)
               if rollout_key(slug, s) not in done)


def iter_plan(taskset: Taskset, group_size: int, run_id: str, *,
              done: Set[str] = frozenset(),
              attempts: dict[str, int] | None = None) -> Iterator[RolloutSpec]:
    """Lazily yield the specs of :func:`plan` (the driver's memory stays flat: slugs
    come from the task table's column, no row is decoded)."""
    if group_size < 1:
        raise ValueError("group_size must be >= 1")
    attempts = attempts or {}
    for index, slug in enumerate(taskset.table.slugs()):
        gid = group_id(run_id, slug)
        for sample in range(group_size):
            key = rollout_key(slug, sample)
            if key in done:
                continue
            last = attempts.get(key)
            attempt = 0 if last is None else last + 1
            yield RolloutSpec(index, slug, gid, sample, attempt, new_trace_id())
