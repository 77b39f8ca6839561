"""Adapter edge cases on hand-built rows: missing logprobs, per-chunk advantages, failed
members, duplicate final rows, unreadable parts."""

from __future__ import annotations

import pyarrow as pa
import pytest

from hud_ray.adapters import flat_samples, slime_groups, tinker_datums
from hud_ray.data import follow, groups
from hud_ray.errors import RecordError
from hud_ray.records import RolloutRecord, build_chunks, to_table
from hud_ray.sink import ArrowSink


def row(sample: int, reward: float | None, *, chunks=None, group: str = "g",
        trace: str | None = None, size: int = 2) -> RolloutRecord:
    return RolloutRecord(run_id="r", trace_id=trace or f"{group}-{sample}",
                         rollout_key=f"{group}#{sample}", slug=group, env="e", template_id="t",
                         args="{}", group_id=group, sample_index=sample, attempt=0, final=True,
                         agent="a", status="ok" if reward is not None else "agent_error",
                         reward=reward, reward_valid=reward is not None, group_size=size,
                         chunks=chunks)


def two_turns(lp=True):
    return build_chunks([[1, 2], [1, 2, 3, 4, 9]], [[3, 4], [5]],
                        [[-0.1, -0.2], [-0.3]] if lp else None)


def test_missing_logprobs_refuse_rl_losses_but_not_cross_entropy():
    table = to_table([row(0, 1.0, chunks=two_turns(lp=False)), row(1, 0.0, chunks=two_turns())])
    [group] = list(groups(table, policy="drop_group"))
    with pytest.raises(RecordError, match="no sampler logprobs"):
        tinker_datums(group)
    ce = tinker_datums(group, loss_fn="cross_entropy")
    assert [d.loss_fn_inputs["weights"].tolist() for d in ce] == [[0, 1, 1, 0, 1]] * 2


def test_chunk_advantage_overrides_the_row_and_untrainable_turns_are_masked():
    chunks = two_turns()
    chunks[1]["advantage"] = 2.0  # the first model turn has its own advantage
    chunks[3]["trainable"] = False  # e.g. a parse-error turn
    table = to_table([row(0, 1.0, chunks=chunks), row(1, 0.0, chunks=two_turns())])
    [group] = list(groups(table))
    first = tinker_datums(group)[0]
    assert first.loss_fn_inputs["advantages"].tolist() == [0, 2, 2, 0, 0]
    assert first.mask.tolist() == [0, 1, 1, 0, 0]
    assert first.loss_fn_inputs["logprobs"].tolist() == pytest.approx(
        [0, -0.1, -0.2, 0, -0.3])  # logprobs stay, as the cookbook keeps them


def test_failed_member_is_a_masked_slime_placeholder_and_no_tinker_datum():
    table = to_table([row(0, 1.0, chunks=two_turns()), row(1, None)])
    [group] = list(groups(table, policy="pad_masked"))
    assert len(tinker_datums(group)) == 1
    [entries] = slime_groups([group])
    assert len(entries) == 2  # the group stays complete for slime's positional grouping
    placeholder = entries[1]
    assert placeholder["remove_sample"] and placeholder["loss_mask"] == [0]
    assert placeholder["response_length"] == len(placeholder["rollout_log_probs"]) == 1
    assert placeholder["status"] == "failed" and placeholder["reward"] == 0.0
    good = flat_samples([entries])[0]
    assert good["tokens"] == [1, 2, 3, 4, 9, 5] and good["response_length"] == 4
    assert good["loss_mask"] == [1, 1, 0, 1]
    assert good["rollout_log_probs"] == pytest.approx([-0.1, -0.2, 0.0, -0.3])


def test_group_is_yielded_once_even_if_a_late_duplicate_final_row_arrives(tmp_path, caplog):
    sink = ArrowSink(tmp_path, flush_rows=1)
    sink.open({"run_id": "r", "config": {"group_size": 2}})
    sink.write([row(0, 1.0), row(1, 0.0)])
    sink.write([row(1, 1.0, trace="dup")])  # must not re-open or re-yield the group
    sink.close({"rollouts": 2})
    seen = [g.group_id for g in follow(tmp_path, poll=0.01)]
    assert seen == ["g"] and "after the group completed" in caplog.text


def test_unreadable_part_is_a_clear_error(tmp_path):
    sink = ArrowSink(tmp_path)
    sink.open({"run_id": "r"})
    (tmp_path / "rollouts-000000.arrow").write_bytes(b"not arrow")
    with pytest.raises(RecordError, match="unreadable Arrow part"):
        list(follow(tmp_path, idle_timeout=1))


def test_groups_over_a_table_need_no_run_directory():
    table = to_table([row(0, 1.0, group="a"), row(1, 0.0, group="a"), row(0, 1.0, group="b")])
    found = {g.group_id: g for g in groups(table)}
    assert set(found) == {"a"}  # b is still missing a member
    assert found["a"].rows["advantage"].to_pylist() == [0.5, -0.5]
    assert isinstance(found["a"].rows, pa.Table)


def test_rows_without_token_data_are_a_clear_error_not_an_empty_batch():
    table = to_table([row(0, 1.0), row(1, 0.0)])  # e.g. an oracle run, no token ids
    [group] = list(groups(table))
    with pytest.raises(RecordError, match="no token data to train on"):
        tinker_datums(group)
    with pytest.raises(RecordError, match="return_token_ids"):
        slime_groups([group])
