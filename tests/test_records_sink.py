"""The Arrow schema, the streaming sink, reading mid-run, and resume bookkeeping."""

from __future__ import annotations

import pyarrow as pa
import pytest

from hud_ray import SCHEMA, SCHEMA_VERSION, RolloutRecord, read_rollouts
from hud_ray.errors import RecordError
from hud_ray.records import COLUMNS, to_table
from hud_ray.sink import ArrowSink, ResumeState, read_manifest

REQUIRED = ["run_id", "trace_id", "slug", "env", "template_id", "args", "group_id",
            "sample_index", "attempt", "agent", "model", "prompt", "answer", "reward",
            "reward_valid", "subscores", "status", "error_type", "error_message", "num_steps",
            "steps", "started_at", "ended_at", "duration_s"]


def record(i: int, **kw) -> RolloutRecord:
    base = dict(run_id="r", trace_id=f"t{i}", rollout_key=f"s#{i}", slug="s", env="e",
                template_id="t", args="{}", group_id="g", sample_index=i, attempt=0,
                final=True, agent="oracle", status="ok", reward=1.0, reward_valid=True,
                subscores={"a": 1.0})
    base.update(kw)
    return RolloutRecord(**base)


def test_schema_has_required_columns_and_version():
    for name in REQUIRED:
        assert name in SCHEMA.names
    assert SCHEMA.metadata[b"hud_ray.schema_version"] == SCHEMA_VERSION.encode()
    assert tuple(SCHEMA.names) == COLUMNS
    table = to_table([record(0), record(1, reward=None, reward_valid=False, status="timeout")])
    assert table.schema == SCHEMA
    assert table.column("reward").to_pylist() == [1.0, None]


def test_sink_parts_are_readable_mid_run(tmp_path):
    sink = ArrowSink(tmp_path / "run", flush_rows=3, flush_seconds=999)
    sink.open({"run_id": "r"})
    sink.write([record(i) for i in range(2)])
    assert read_rollouts(tmp_path / "run").num_rows == 0  # still buffered
    sink.write([record(2)])
    assert read_rollouts(tmp_path / "run").num_rows == 3  # flushed at 3 rows, readable now
    sink.write([record(3)])
    sink.close({"rollouts": 4})
    table = read_rollouts(tmp_path / "run")
    assert table.num_rows == 4 and table.schema == SCHEMA
    assert read_manifest(tmp_path / "run")["schema_version"] == SCHEMA_VERSION
    assert (tmp_path / "run" / "_summary.json").exists()
    assert not list((tmp_path / "run").glob("*.tmp"))


def test_resume_state_counts_final_keys_and_attempts(tmp_path):
    sink = ArrowSink(tmp_path)
    sink.open({"run_id": "r"})
    sink.write([record(0),
                record(1, final=False, status="infra_error", reward=None, reward_valid=False),
                record(1, trace_id="t1b", attempt=1)])
    sink.write([record(2, final=False, status="cancelled", reward=None, reward_valid=False)])
    sink.close()
    state = ResumeState.scan(tmp_path)
    assert state.done == {"s#0", "s#1"}
    assert state.attempts == {"s#0": 0, "s#1": 1, "s#2": 0}
    # a second sink continues the part numbering instead of overwriting
    again = ArrowSink(tmp_path)
    again.write([record(5)])
    again.close()
    assert read_rollouts(tmp_path).num_rows == 5


def test_unreadable_dirs_are_record_errors(tmp_path):
    with pytest.raises(RecordError):
        read_rollouts(tmp_path / "missing")
    with pytest.raises(RecordError):
        read_manifest(tmp_path)
    (tmp_path / "rollouts-000000.arrow").write_bytes(b"garbage")
    with pytest.raises(RecordError):
        read_rollouts(tmp_path)


def test_empty_dir_reads_as_empty_table(tmp_path):
    assert read_rollouts(tmp_path).schema == SCHEMA
    assert isinstance(read_rollouts(tmp_path), pa.Table)
