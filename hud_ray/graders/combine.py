"""Weighted combination of subscores into one reward."""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import Awaitable, Iterable

from hud_ray.errors import GradeError
from hud_ray.graders.results import EvaluationResult, SubScore


async def combine(*items: SubScore | Awaitable[SubScore]) -> EvaluationResult:
    """Resolve subscores (awaiting any coroutines concurrently) into a weighted reward.

    Positive weights are normalised to sum to 1; negative weights subtract as
    penalties. The reward is clamped to [0, 1].
    """
    resolved = await asyncio.gather(*(_resolve(i) for i in items))
    return weighted(resolved)


async def _resolve(item: SubScore | Awaitable[SubScore]) -> SubScore:
    value = await item if inspect.isawaitable(item) else item
    if not isinstance(value, SubScore):
        raise GradeError(f"combine() expects SubScore items, got {type(value).__name__}",
                         code="invalid_reward")
    return value


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
    total = sum(s.value * s.weight for s in subs if s.weight > 0) / positive
    total += sum(s.value * s.weight for s in subs if s.weight < 0) / positive
    return EvaluationResult(reward=min(1.0, max(0.0, total)), subscores=subs)


def combine_any(weight: float, subscores: Iterable[SubScore], *, name: str = "any") -> SubScore:
    subs = list(subscores)
    return SubScore(name=name, value=max((s.value for s in subs), default=0.0), weight=weight,
                    children=subs)


def combine_all(weight: float, subscores: Iterable[SubScore], *, name: str = "all") -> SubScore:
    subs = list(subscores)
    return SubScore(name=name, value=min((s.value for s in subs), default=0.0), weight=weight,
                    children=subs)
