"""Schema 2 training columns: token chunks and segments, and reading schema-1 runs."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pyarrow as pa
import pytest

from hud_ray import SCHEMA, read_rollouts
from hud_ray.data import dataset, groups, read
from hud_ray.errors import RecordError
from hud_ray.records import RolloutRecord, build_chunks
from hud_ray.sink import ArrowSink

#: the schema-1 columns, in order, as they were declared before schema 2
V1_COLUMNS = SCHEMA.names[:SCHEMA.names.index("worker") + 1]


def test_segments_extend_while_prompts_extend_and_split_when_not():
    # turn 0: prompt P0 -> A0; turn 1: P0 + A0 + tool -> A1 (extends);
    # turn 2: a re-rendered prompt (does not extend) -> A2 starts segment 1
    p0, a0 = [1, 2, 3], [10, 11]
    p1 = p0 + a0 + [20, 21]
    a1 = [12]
    p2 = [1, 2, 3, 99, 20, 21]
    a2 = [13, 14]
    chunks = build_chunks([p0, p1, p2], [a0, a1, a2],
                          [[-0.1, -0.2], [-0.3], [-0.4, -0.5]], ["tool_calls", "tool_calls",
                                                                 "stop"])
    kinds = [(c["segment"], c["turn"], c["kind"], c["tokens"]) for c in chunks]
    assert kinds == [(0, 0, "prompt", p0), (0, 0, "model", a0), (0, 1, "env", [20, 21]),
                     (0, 1, "model", a1), (1, 2, "prompt", p2), (1, 2, "model", a2)]
    model = [c for c in chunks if c["kind"] == "model"]
    assert [c["logprobs"] for c in model] == [[-0.1, -0.2], [-0.3], [-0.4, -0.5]]
    assert all(c["trainable"] for c in model)
    assert not any(c["trainable"] for c in chunks if c["kind"] != "model")
    assert [c["finish_reason"] for c in model] == ["tool_calls", "tool_calls", "stop"]
    # token-exact: every model chunk's prompt is the segment's tokens before it
    for turn, prompt in enumerate([p0, p1, p2]):
        at = next(i for i, c in enumerate(chunks) if c["kind"] == "model" and c["turn"] == turn)
        seg = chunks[at]["segment"]
        before = [t for c in chunks[:at] if c["segment"] == seg for t in c["tokens"]]
        assert before == prompt


def test_chunks_drop_misaligned_logprobs_and_handle_no_tokens():
    chunks = build_chunks([[1]], [[5, 6]], [[-0.1]])  # one logprob for two tokens
    assert chunks[1]["logprobs"] is None
    assert build_chunks(None, None) is None and build_chunks([], []) is None
    no_prompt = build_chunks([[], [1, 2]], [[5], [6]], [[-0.1], [-0.2]])
    assert [(c["kind"], c["trainable"]) for c in no_prompt if c["kind"] == "model"] == \
        [("model", False), ("model", True)]


def _old_part(path, rows: list[dict]) -> None:
    """Write an Arrow part in the schema-1 layout (columns of the time, version "1")."""
    v1_types = {"subscores": pa.map_(pa.string(), pa.float64())}
    schema = pa.schema([pa.field(n, v1_types[n]) if n in v1_types else SCHEMA.field(n)
                        for n in V1_COLUMNS], metadata={"hud_ray.schema_version": "1"})
    table = pa.Table.from_pylist(rows, schema=schema)
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
        writer.write_table(table)


def _v1_row(i: int, reward: float | None, sample: int, group: str = "g1") -> dict:
    now = datetime.now(UTC)
    full = RolloutRecord(run_id="old", trace_id=f"t{i}", rollout_key=f"s#{sample}", slug="s",
                         env="e", template_id="t", args="{}", group_id=group,
                         sample_index=sample, attempt=0, final=True, agent="a",
                         status="ok" if reward is not None else "agent_error",
                         reward=reward, reward_valid=reward is not None, started_at=now,
                         ended_at=now, prompt_token_ids=[[1, 2]],
                         completion_token_ids=[[3]], completion_logprobs=[[-0.5]]).to_row()
    row = {k: full[k] for k in V1_COLUMNS}
    row["subscores"] = [("exact", reward)] if reward is not None else None  # a v1 map
    return row


@pytest.fixture
def old_run(tmp_path):
    """A run directory written by schema 1 with the old ``manifest.json`` name."""
    run = tmp_path / "old"
    run.mkdir()
    (run / "manifest.json").write_text(json.dumps(
        {"run_id": "old", "schema_version": "1", "config": {"group_size": 2}}))
    _old_part(run / "rollouts-000000.arrow", [_v1_row(0, 1.0, 0), _v1_row(1, 0.0, 1)])
    return run


def test_schema_1_directory_reads_with_new_columns_null(old_run):
    table = read_rollouts(old_run)
    assert table.schema.equals(SCHEMA, check_metadata=False) and table.num_rows == 2
    row = table.to_pylist()[0]
    assert row["chunks"] is None and row["group_size"] is None and row["columns"] is None
    assert row["completion_token_ids"] == [[3]]  # old columns keep their values
    assert row["subscores"] == [{"key": "exact", "value": 1.0}]  # a v1 map, as pairs
    via_dataset = dataset(old_run).to_table()
    assert via_dataset.num_rows == 2 and via_dataset["policy_version"].null_count == 2
    assert read(old_run, valid=True).num_rows == 2
    # groups: the group size comes from the old manifest's config
    [group] = list(groups(old_run))
    assert group.kept and group.rows["advantage"].to_pylist() == [0.5, -0.5]


def test_schema_1_run_resumed_under_schema_2_reads_as_one(old_run):
    sink = ArrowSink(old_run)  # a resume appends schema-2 parts after the old ones
    sink.open({"run_id": "old", "config": {"group_size": 2}})
    now = datetime.now(UTC)
    sink.write([RolloutRecord(run_id="old", trace_id="t9", rollout_key="u#0", slug="u",
                              env="e", template_id="t", args="{}", group_id="g2",
                              sample_index=0, attempt=0, final=True, agent="a", status="ok",
                              reward=1.0, reward_valid=True, started_at=now, ended_at=now,
                              group_size=1, chunks=build_chunks([[1]], [[2]], [[-0.1]]))])
    sink.close()
    table = read_rollouts(old_run)
    assert table.num_rows == 3 and table["chunks"].null_count == 2
    assert dataset(old_run).to_table().num_rows == 3
    assert sorted(g.group_id for g in groups(old_run)) == ["g1", "g2"]


def test_many_runs_and_a_sweep_folder_open_as_one_dataset(tmp_path, old_run):
    sweep = tmp_path / "sweep"
    for name in ("a", "nested/b"):
        sink = ArrowSink(sweep / name)
        sink.open({"run_id": name, "config": {"group_size": 1}})
        now = datetime.now(UTC)
        sink.write([RolloutRecord(run_id=name, trace_id=f"{name}-0", rollout_key="s#0",
                                  slug="s", env="e", template_id="t", args="{}",
                                  group_id=f"g-{name}", sample_index=0, attempt=0, final=True,
                                  agent="a", status="ok", reward=1.0, reward_valid=True,
                                  started_at=now, ended_at=now, group_size=1,
                                  policy_version=3 if name == "a" else 5)])
        sink.close()
    assert dataset(sweep).to_table().num_rows == 2
    assert read([sweep, old_run]).num_rows == 4
    assert read(sweep, policy_versions=(4, None))["run_id"].to_pylist() == ["nested/b"]
    assert len(list(groups(sweep))) == 2
    (tmp_path / "empty").mkdir()
    with pytest.raises(RecordError, match="no hud-ray run directories"):
        dataset(tmp_path / "empty")
    with pytest.raises(RecordError, match="not a run directory"):
        dataset(tmp_path / "missing")
