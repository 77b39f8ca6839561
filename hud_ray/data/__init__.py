"""Runs as training data: open runs and sweeps as Arrow datasets, filter rows, iterate
complete groups with their advantages, and follow a live run group by group.

    from hud_ray.data import follow
    for group in follow("runs/my-run"):
        if group.kept:
            train_on(group.rows)

The readers load on first use (``pyarrow.dataset`` is slow to import), so the engine can
use :class:`GroupPolicy` without paying for them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from hud_ray.data.policy import GroupPolicy, GroupResult, apply_policy

if TYPE_CHECKING:
    from hud_ray.data.readers import (
        GROUP_COLUMNS,
        Group,
        dataset,
        filter_expression,
        follow,
        group_policy_of,
        groups,
        read,
        run_dirs,
    )

_READERS = {"GROUP_COLUMNS", "Group", "dataset", "filter_expression", "follow",
            "group_policy_of", "groups", "read", "run_dirs"}


def __getattr__(name: str) -> Any:
    if name in _READERS:
        return getattr(importlib.import_module("hud_ray.data.readers"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["GROUP_COLUMNS", "Group", "GroupPolicy", "GroupResult", "apply_policy", "dataset",
           "filter_expression", "follow", "group_policy_of", "groups", "read", "run_dirs"]
