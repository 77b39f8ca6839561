"""Groups and advantages: which rows of a group train, and with what advantage.

A group is the ``group_size`` rollouts of one task in one run (one ``group_id``). It is
*complete* when every sample index has a final row. Rows whose reward is not valid
(failed rollouts) never enter the statistics as 0.0; what happens to their group is the
:class:`GroupPolicy`, recorded in the run manifest:

- ``drop_group``: any invalid member drops the whole group (no partial-group bias).
- ``keep_partial``: keep the valid members if there are at least ``min_size`` of them;
  advantages are centred over the kept members only.
- ``pad_masked``: keep every member; invalid members get advantage 0 and are masked
  (``trainable`` false), so a trainer that needs full groups gets them.

Advantages: GRPO mean-centred ``r - mean(r)``; ``std=True`` divides by the group's
standard deviation (population, plus ``eps``); ``leave_one_out=True`` centres each row
on the mean of the *other* kept members. A group whose kept rewards are all equal is
flagged ``zero_variance`` (its advantages are all 0).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hud_ray.errors import ConfigError


class GroupPolicy(BaseModel):
    """How complete groups become training rows (stored in the run manifest)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    policy: Literal["drop_group", "keep_partial", "pad_masked"] = "drop_group"
    min_size: int | None = Field(default=None, ge=1)
    std: bool = False
    leave_one_out: bool = False
    eps: float = Field(default=1e-6, ge=0)

    @model_validator(mode="after")
    def _check(self) -> GroupPolicy:
        if self.policy == "keep_partial" and self.min_size is None:
            raise ValueError("keep_partial needs min_size")
        return self

    @classmethod
    def parse(cls, value: GroupPolicy | dict[str, Any] | str | None) -> GroupPolicy:
        """A policy from a model, a dict, or text such as ``keep_partial:3``."""
        if value is None:
            return cls()
        if isinstance(value, GroupPolicy):
            return value
        try:
            if isinstance(value, str):
                name, _, size = value.partition(":")
                return cls(policy=name.strip(),  # type: ignore[arg-type]
                           min_size=int(size) if size else None)
            return cls.model_validate(value)
        except (ValueError, TypeError) as exc:
            first = str(exc).splitlines()
            raise ConfigError(f"bad group policy {value!r}: "
                              f"{first[-1].strip() if first else exc}") from None


@dataclass(frozen=True, slots=True)
class GroupResult:
    """What a policy made of one complete group, row by row (input order)."""

    kept: bool
    advantages: list[float | None]  # None: the row does not train (dropped)
    trainable: list[bool]
    zero_variance: bool
    mean: float | None
    std: float | None
    valid: int


def apply_policy(rewards: Sequence[float | None], valid: Sequence[bool],
                 policy: GroupPolicy, group_size: int | None = None) -> GroupResult:
    """Advantages for one complete group. ``rewards[i]`` only counts when ``valid[i]``."""
    n = len(rewards)
    ok = [i for i in range(n) if valid[i] and rewards[i] is not None
          and math.isfinite(float(rewards[i]))]  # type: ignore[arg-type]
    size = group_size or n
    kept = True
    if policy.policy == "drop_group" and len(ok) < size:
        kept = False
    if policy.policy == "keep_partial" and len(ok) < (policy.min_size or size):
        kept = False
    if not ok:
        kept = False
    if not kept:
        return GroupResult(False, [None] * n, [False] * n, False, None, None, len(ok))
    values = [float(rewards[i]) for i in ok]  # type: ignore[arg-type]
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    zero_var = max(values) - min(values) <= 1e-12
    adv: list[float | None] = [None] * n
    trainable = [False] * n
    k = len(values)
    for i, v in zip(ok, values, strict=True):
        if policy.leave_one_out:
            a = v - (sum(values) - v) / (k - 1) if k > 1 else 0.0
        else:
            a = v - mean
        if policy.std:
            a = a / (std + policy.eps)
        adv[i] = 0.0 if zero_var else a
        trainable[i] = True
    if policy.policy == "pad_masked":
        adv = [0.0 if a is None else a for a in adv]
    return GroupResult(True, adv, trainable, zero_var, mean, std, len(ok))
