"""Adapters on a real multi-turn, tool-using Ray eval (token ids and logprobs from the
local provider, one turn that does not extend its prompt): Tinker datums equal to the
Tinker cookbook's own builder, slime samples that pass slime's length checks, SFT rows."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _data_support import shared_tool_run

from hud_ray.adapters import (
    LOSS_KEYS,
    flat_samples,
    sft_rows,
    slime_groups,
    tinker_datums,
    write_debug_rollouts,
)
from hud_ray.data import groups
from hud_ray.errors import ConfigError

pytestmark = pytest.mark.ray
SLIME_STATUSES = {"pending", "completed", "truncated", "aborted", "failed"}


@pytest.fixture(scope="module")
def run(ray_session, tmp_path_factory):
    return shared_tool_run(tmp_path_factory, group_policy="keep_partial:2")


def test_tinker_datums_follow_the_shift_rules(run):
    kept = [g for g in groups(run) if g.kept]
    datums = tinker_datums(kept)
    trainable = sum(r["trainable_row"] for g in kept for r in g.rows.to_pylist())
    assert len(datums) == 2 * trainable  # two segments per rollout (one non-prefix turn)
    rows = {r["trace_id"]: r for g in kept for r in g.rows.to_pylist()}
    for d in datums:
        assert tuple(d.loss_fn_inputs) == LOSS_KEYS["importance_sampling"]
        assert "mask" not in d.loss_fn_inputs
        assert d.model_input.dtype == np.int64
        assert d.loss_fn_inputs["target_tokens"].dtype == np.int64
        assert d.loss_fn_inputs["logprobs"].dtype == np.float32
        assert d.loss_fn_inputs["advantages"].dtype == np.float32
        chunks = [c for c in rows[d.trace_id]["chunks"] if c["segment"] == d.segment]
        seq = [t for c in chunks for t in c["tokens"]]
        assert d.model_input.tolist() == seq[:-1]
        assert d.loss_fn_inputs["target_tokens"].tolist() == seq[1:]
        n = len(seq) - 1
        assert all(len(v) == n for v in d.loss_fn_inputs.values()) and len(d.mask) == n
        off = d.mask == 0  # zero on every non-trainable position
        assert not d.loss_fn_inputs["advantages"][off].any()
        assert not d.loss_fn_inputs["logprobs"][off].any()
        assert (d.loss_fn_inputs["advantages"][~off] ==
                np.float32(rows[d.trace_id]["advantage"])).all()
    # the row-dict path and the columnar fast path agree exactly
    slow = tinker_datums([r for g in kept for r in g.rows.to_pylist()])
    assert len(slow) == len(datums)
    for a, b in zip(slow, datums, strict=True):
        assert np.array_equal(a.model_input, b.model_input) and np.array_equal(a.mask, b.mask)
        for key in a.loss_fn_inputs:
            assert a.loss_fn_inputs[key].dtype == b.loss_fn_inputs[key].dtype
            assert np.array_equal(a.loss_fn_inputs[key], b.loss_fn_inputs[key])
    ce = tinker_datums(kept, loss_fn="cross_entropy")
    assert [tuple(d.loss_fn_inputs) for d in ce] == [("target_tokens", "weights")] * len(ce)
    assert all((d.loss_fn_inputs["weights"] == d.mask).all() for d in ce)
    with pytest.raises(ConfigError, match="unknown Tinker loss"):
        tinker_datums(kept, loss_fn="dpo")  # type: ignore[arg-type]


def test_tinker_datums_equal_the_cookbook_builder(run):
    pytest.importorskip("torch")
    tinker = pytest.importorskip("tinker")
    dp = pytest.importorskip("tinker_cookbook.rl.data_processing")
    from tinker_cookbook.completers import TokensWithLogprobs
    from tinker_cookbook.rl.types import Trajectory, TrajectoryGroup, Transition

    kept = [g for g in groups(run) if g.kept]
    # The cookbook's inputs, from the engine's raw per-call ids (not from our chunks):
    # one transition per model call, the full prompt as the observation.
    cookbook_groups = []
    for g in kept:
        trajs, rewards = [], []
        for r in g.rows.to_pylist():
            if not r["trainable_row"]:
                continue  # a failed member: not in the group the cookbook centres over
            calls = list(zip(r["prompt_token_ids"], r["completion_token_ids"],
                             r["completion_logprobs"], strict=True))
            trajs.append(Trajectory(transitions=[
                Transition(ob=tinker.ModelInput.from_ints(p),
                           ac=TokensWithLogprobs(tokens=c, maybe_logprobs=lp), reward=0.0,
                           episode_done=i == len(calls) - 1)
                for i, (p, c, lp) in enumerate(calls)],
                final_ob=tinker.ModelInput.from_ints([])))
            rewards.append(r["reward"])
        cookbook_groups.append(TrajectoryGroup(trajectories_G=trajs, final_rewards_G=rewards,
                                               metrics_G=[{} for _ in trajs]))
    theirs, _ = dp.assemble_training_data(cookbook_groups,
                                          dp.compute_advantages(cookbook_groups))
    ours = tinker_datums(kept)
    assert len(ours) == len(theirs) > 0
    for mine, ref in zip(ours, theirs, strict=True):
        assert mine.model_input.tolist() == ref.model_input.to_ints()
        assert set(ref.loss_fn_inputs) - {"mask"} == set(mine.loss_fn_inputs)
        for key, value in mine.loss_fn_inputs.items():
            expected = ref.loss_fn_inputs[key]
            assert str(value.dtype) == expected.dtype, key
            if key == "advantages":  # the cookbook centres in float32, we in float64
                np.testing.assert_allclose(value, expected.to_numpy(), rtol=1e-6, atol=1e-7)
            else:
                assert np.array_equal(value, expected.to_numpy()), key
        assert np.array_equal(mine.mask, ref.loss_fn_inputs["mask"].to_numpy())
        sent = mine.to_tinker()  # what goes to the service: no mask key
        assert isinstance(sent, tinker.Datum) and "mask" not in sent.loss_fn_inputs
        assert sent.model_input.to_ints() == ref.model_input.to_ints()
        assert sent.loss_fn_inputs["target_tokens"].dtype == "int64"


def _slime_checks(sample: dict) -> None:
    """The length and type checks slime applies when it turns samples into train data."""
    assert isinstance(sample["tokens"], list) and isinstance(sample["response_length"], int)
    assert 0 < sample["response_length"] <= len(sample["tokens"])
    assert len(sample["loss_mask"]) == sample["response_length"]
    assert len(sample["rollout_log_probs"]) == sample["response_length"]
    assert set(sample["loss_mask"]) <= {0, 1}
    assert sample["status"] in SLIME_STATUSES and isinstance(sample["reward"], float)
    if sample["remove_sample"] is False:
        assert any(sample["loss_mask"])


def test_slime_samples_pass_length_checks_in_complete_groups(run, tmp_path):
    all_groups = list(groups(run))
    out = slime_groups(all_groups)
    assert [len(entries) for entries in out] == [4] * len(all_groups)  # complete, in order
    samples = flat_samples(out)
    for s in samples:
        _slime_checks(s)
    assert [s["index"] for s in samples] == list(range(len(samples)))
    assert sorted({s["group_index"] for s in samples}) == list(range(len(all_groups)))
    for entries, g in zip(out, all_groups, strict=True):
        for entry, row in zip(entries, g.rows.to_pylist(), strict=True):
            if not row["reward_valid"]:  # the failed member: a masked entry, reward 0
                parts = entry if isinstance(entry, list) else [entry]
                assert all(p["remove_sample"] and p["reward"] == 0.0 for p in parts)
                assert all(p["status"] == "failed" for p in parts)
                continue
            assert isinstance(entry, list) and len(entry) == 2  # two segments, one rollout
            assert len({p["rollout_id"] for p in entry}) == 1
            for p in entry:
                assert p["reward"] == pytest.approx(row["advantage"])  # precomputed
                assert p["metadata"]["raw_reward"] == row["reward"]
                assert p["status"] == "completed" and p["weight_versions"] == []
                resp = p["tokens"][-p["response_length"]:]
                # the response starts at the segment's first sampled token
                model = [c for c in row["chunks"] if c["segment"] == p["metadata"]["segment"]
                         and c["kind"] == "model"]
                assert resp[:len(model[0]["tokens"])] == model[0]["tokens"]
    raw = flat_samples(slime_groups(all_groups, reward="raw"))
    assert {s["reward"] for s in raw if not s["remove_sample"]} <= {0.0, 1.0}
    torch = pytest.importorskip("torch")
    path = write_debug_rollouts(all_groups, tmp_path / "rollout_{rollout_id}.pt", rollout_id=3)
    assert path.name == "rollout_3.pt"
    loaded = torch.load(path, weights_only=True)  # plain data: loads under the safe loader
    assert loaded["rollout_id"] == 3 and loaded["samples"] == samples


def test_sft_rows_take_the_best_valid_rollout(run):
    all_groups = list(groups(run))
    rows = sft_rows(all_groups)
    assert len(rows) == len(all_groups)
    for row, g in zip(rows, all_groups, strict=True):
        valid = [r for r in g.rows.to_pylist() if r["reward_valid"]]
        assert row["reward"] == max(r["reward"] for r in valid)
        roles = [m["role"] for m in row["messages"]]
        assert roles == ["user", "assistant", "tool", "assistant", "tool", "assistant"]
        call = row["messages"][1]["tool_calls"][0]
        assert call["function"]["name"] == "think"
        assert isinstance(json.loads(call["function"]["arguments"]), dict)
    assert sft_rows(all_groups, min_reward=2.0) == []


def test_slime_rollout_function_serves_complete_groups_in_order(run, monkeypatch):
    import sys
    import types
    from types import SimpleNamespace

    from hud_ray.adapters import slime_rollout

    # slime itself needs Megatron/SGLang; its Sample.from_dict is stood in for here
    fake = types.ModuleType("slime.utils.types")
    fake.Sample = type("Sample", (), {"from_dict": staticmethod(
        lambda d: SimpleNamespace(**d))})
    for name in ("slime", "slime.utils"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "slime.utils.types", fake)
    monkeypatch.setattr(slime_rollout, "_state", {})
    monkeypatch.delenv("HUD_RAY_SLIME_RUN", raising=False)
    args = SimpleNamespace(rollout_batch_size=2)
    with pytest.raises(ConfigError, match="HUD_RAY_SLIME_RUN"):
        slime_rollout.generate_rollout(args, 0)
    monkeypatch.setenv("HUD_RAY_SLIME_RUN", str(run))
    first = slime_rollout.generate_rollout(args, 0)
    second = slime_rollout.generate_rollout(args, 1)
    assert [len(g) for g in first] == [4, 4] and [len(g) for g in second] == [4]

    def flat(batch):
        return [s for g in batch for e in g for s in (e if isinstance(e, list) else [e])]

    samples = flat(first) + flat(second)
    assert [s.index for s in samples] == list(range(len(samples)))
    assert [s.group_index for s in flat(second)] == [2] * len(flat(second))
    assert all(len(s.loss_mask) == s.response_length for s in samples)
