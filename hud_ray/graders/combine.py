"""Weighted combination of subscores into one reward, with HUD's arithmetic."""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import Awaitable, Iterable

from hud_ray.errors import GradeError
from hud_ray.graders.results import EvaluationResult, SubScore


async def combine(*items: SubScore | Awaitable[SubScore]) -> EvaluationResult:
    """Resolve subscores (awaiting any coroutines concurrently) into a weighted reward.

    Positive weights are normalised to sum to 1; a negative weight is a penalty kept
    as written (``value * weight`` is added), so the reward may fall below 0.
    Repeated names get ``-1``, ``-2`` suffixes.
    """
    resolved = await asyncio.gather(*(_resolve(i) for i in items))
    return weighted(resolved)


async def _resolve(item: SubScore | Awaitable[SubScore]) -> SubScore:
    value = await item if inspect.isawaitable(item) else item
    if not isinstance(value, SubScore):
        raise GradeError(f"combine() expects SubScore items, got {type(value).__name__}",
                         code="invalid_reward")
    return value


def unique_names(subscores: list[SubScore]) -> list[str]:
    """Stable unique names: a repeated name ``n`` becomes ``n-1``, ``n-2``, ..."""
    counts: dict[str, int] = {}
    for s in subscores:
        counts[s.name] = counts.get(s.name, 0) + 1
    taken = {s.name for s in subscores}
    used: set[str] = set()
    next_suffix: dict[str, int] = {}
    names: list[str] = []
    for s in subscores:
        if counts[s.name] == 1 and s.name not in used:
            final = s.name
        else:
            n = next_suffix.get(s.name, 0)
            while True:
                n += 1
                final = f"{s.name}-{n}"
                if final not in used and final not in taken:
                    break
            next_suffix[s.name] = n
        used.add(final)
        names.append(final)
    return names


def weighted(subscores: Iterable[SubScore]) -> EvaluationResult:
    subs = list(subscores)
    if not subs:
        raise GradeError("combine() needs at least one subscore", code="invalid_reward")
    for s in subs:
        if not math.isfinite(s.value) or not math.isfinite(s.weight):
            raise GradeError(f"subscore {s.name!r} is not finite", code="invalid_reward")
    positive = sum(s.weight for s in subs if s.weight > 0)
    if positive <= 0:
        raise GradeError("combine() needs a subscore with positive weight", code="invalid_reward")
    normalised = [s.model_copy(update={"name": name,
                                       "weight": s.weight / positive if s.weight > 0
                                       else s.weight})
                  for s, name in zip(subs, unique_names(subs), strict=True)]
    reward = float(sum(s.value * s.weight for s in normalised))
    return EvaluationResult(reward=reward, done=True, subscores=normalised)


def _boolean(name: str, weight: float, subscores: Iterable[SubScore], value: str) -> SubScore:
    subs = list(subscores)
    if not subs:
        raise GradeError(f"combine_{value}() needs at least one subscore", code="invalid_reward")
    children = [s.model_copy(update={"name": n}) for s, n in zip(subs, unique_names(subs),
                                                                   strict=True)]
    pick = max if value == "any" else min
    return SubScore(name=name, value=pick(s.value for s in subs), weight=weight,
                    children=children)


def combine_any(weight: float, subscores: Iterable[SubScore], *, name: str = "any") -> SubScore:
    """Passes if any input passes (max); inputs kept as children."""
    return _boolean(name, weight, subscores, "any")


def combine_all(weight: float, subscores: Iterable[SubScore], *, name: str = "all") -> SubScore:
    """Passes only if all inputs pass (min); inputs kept as children."""
    return _boolean(name, weight, subscores, "all")
