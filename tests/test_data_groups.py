"""Group policies and advantages: failed members never count as 0.0."""

from __future__ import annotations

import math

import pytest

from hud_ray.data import GroupPolicy, apply_policy
from hud_ray.errors import ConfigError

REWARDS = [1.0, 0.0, None, 0.5]
VALID = [True, True, False, True]


def test_drop_group_drops_any_group_with_a_failed_member():
    r = apply_policy(REWARDS, VALID, GroupPolicy(policy="drop_group"), 4)
    assert not r.kept and r.advantages == [None] * 4 and r.trainable == [False] * 4
    full = apply_policy([1.0, 0.0, 0.0, 1.0], [True] * 4, GroupPolicy(), 4)
    assert full.kept and full.advantages == [0.5, -0.5, -0.5, 0.5]


def test_keep_partial_centres_over_kept_members_only():
    r = apply_policy(REWARDS, VALID, GroupPolicy(policy="keep_partial", min_size=3), 4)
    assert r.kept and r.valid == 3 and r.mean == pytest.approx(0.5)  # not (1+0+0+.5)/4
    assert r.advantages == [0.5, -0.5, None, 0.0] and r.trainable == [True, True, False, True]
    assert math.isclose(sum(a for a in r.advantages if a is not None), 0.0, abs_tol=1e-12)
    short = apply_policy(REWARDS, VALID, GroupPolicy(policy="keep_partial", min_size=4), 4)
    assert not short.kept


def test_pad_masked_keeps_the_group_full_with_masked_failures():
    r = apply_policy(REWARDS, VALID, GroupPolicy(policy="pad_masked"), 4)
    assert r.kept and r.advantages == [0.5, -0.5, 0.0, 0.0]
    assert r.trainable == [True, True, False, True] and r.mean == pytest.approx(0.5)


def test_std_and_leave_one_out():
    rewards, valid = [1.0, 0.0, 0.0, 1.0], [True] * 4
    std = apply_policy(rewards, valid, GroupPolicy(std=True, eps=0.0), 4)
    assert std.advantages == pytest.approx([1.0, -1.0, -1.0, 1.0])
    loo = apply_policy(rewards, valid, GroupPolicy(leave_one_out=True), 4)
    assert loo.advantages == pytest.approx([1 - 1 / 3, 0 - 2 / 3, 0 - 2 / 3, 1 - 1 / 3])
    assert sum(loo.advantages) == pytest.approx(0.0)


def test_zero_variance_groups_are_flagged_with_zero_advantage():
    r = apply_policy([1.0, 1.0, 1.0], [True] * 3, GroupPolicy(std=True), 3)
    assert r.kept and r.zero_variance and r.advantages == [0.0, 0.0, 0.0]


def test_every_member_failed_keeps_nothing_whatever_the_policy():
    for policy in ("drop_group", "keep_partial:1", "pad_masked"):
        r = apply_policy([None, None], [False, False], GroupPolicy.parse(policy), 2)
        assert not r.kept and r.mean is None


def test_a_valid_flag_without_a_finite_reward_does_not_count():
    r = apply_policy([1.0, float("nan"), 0.0], [True, True, True],
                     GroupPolicy(policy="keep_partial", min_size=2), 3)
    assert r.valid == 2 and r.advantages == [0.5, None, -0.5]


@pytest.mark.parametrize("bad", ["keep_partial", "shuffle", "keep_partial:x",
                                 {"policy": "drop_group", "extra": 1}])
def test_bad_policies_are_one_line_config_errors(bad):
    with pytest.raises(ConfigError, match="bad group policy") as err:
        GroupPolicy.parse(bad)
    assert "\n" not in str(err.value)
