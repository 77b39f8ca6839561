"""Runs as training data: open runs and sweeps as Arrow datasets, filter rows, iterate
complete groups with their advantages, and follow a live run group by group.

    from hud_ray.data import follow
    for group in follow("runs/my-run"):
        if group.kept:
            train_on(group.rows)
"""

from hud_ray.data.groups import GroupPolicy, GroupResult, apply_policy
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

__all__ = ["GROUP_COLUMNS", "Group", "GroupPolicy", "GroupResult", "apply_policy", "dataset",
           "filter_expression", "follow", "group_policy_of", "groups", "read", "run_dirs"]
