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


def test_run_dir_opens_with_plain_pyarrow_dataset(tmp_path):
    import pyarrow.dataset as ds

    sink = ArrowSink(tmp_path, flush_rows=3)
    sink.open({"run_id": "r"})
    sink.write([record(i) for i in range(7)])
    (tmp_path / ".rollouts-000009.arrow.tmp").write_bytes(b"half a part")  # a write under way
    sink.close({"rollouts": 7})
    for fmt in ("arrow", "ipc"):
        table = ds.dataset(str(tmp_path), format=fmt).to_table()
        assert table.num_rows == 7 and set(table["trace_id"].to_pylist()) == {
            f"t{i}" for i in range(7)}
    assert (tmp_path / "_manifest.json").exists() and (tmp_path / "_summary.json").exists()


def test_old_layout_dir_reads_and_migrates_on_resume(tmp_path):
    import pyarrow.dataset as ds

    from hud_ray.sink import read_summary

    sink = ArrowSink(tmp_path)
    sink.open({"run_id": "old"})
    sink.write([record(0), record(1, final=False, status="cancelled", reward=None,
                                   reward_valid=False)])
    sink.close({"rollouts": 1})
    (tmp_path / "_manifest.json").rename(tmp_path / "manifest.json")
    (tmp_path / "_summary.json").rename(tmp_path / "summary.json")
    assert read_manifest(tmp_path)["run_id"] == "old"
    assert read_summary(tmp_path)["rollouts"] == 1
    assert ResumeState.scan(tmp_path).done == {"s#0"}
    again = ArrowSink(tmp_path)
    again.open({"run_id": "old"})
    again.write([record(1, trace_id="t1b", attempt=1)])
    again.close({"rollouts": 2})
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("rollouts")) == [
        "_manifest.json", "_summary.json"]
    assert ds.dataset(str(tmp_path), format="arrow").count_rows() == 3


def test_failed_write_keeps_rows_and_raises(tmp_path):
    run = tmp_path / "run"
    sink = ArrowSink(run, flush_rows=1000)
    sink.open({"run_id": "r"})
    sink.write([record(i) for i in range(3)])
    run.rename(tmp_path / "away")
    run.write_text("in the way")
    with pytest.raises(RecordError, match="writing 3 rows failed") as info:
        sink.flush()
    assert info.value.code == "sink_write_failed" and sink.pending == 3
    sink.write([record(3)])
    run.unlink()
    (tmp_path / "away").rename(run)
    sink.close()
    assert read_rollouts(run)["trace_id"].to_pylist() == ["t0", "t1", "t2", "t3"]  # in order
    assert sink.pending == 0 and sink.rows_written == 4


async def test_flush_async_keeps_the_event_loop_running(tmp_path):
    import asyncio

    sink = ArrowSink(tmp_path, flush_rows=10**9)
    sink.open({"run_id": "r"})
    rows = [record(i, steps="x" * 2000).to_row() for i in range(20_000)]
    sink.add(rows)
    ticks = 0
    stop = False

    async def ticker() -> None:
        nonlocal ticks
        while not stop:
            ticks += 1
            await asyncio.sleep(0.001)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)
    before = ticks
    await sink.flush_async()
    during = ticks - before
    stop = True
    await task
    assert read_rollouts(tmp_path).num_rows == 20_000 and sink.pending == 0
    assert during >= 5, f"event loop stalled during the part write ({during} ticks)"
    # a failed async write keeps the rows too
    sink.add(rows[:2])
    (tmp_path / "rollouts-000001.arrow").mkdir()  # the next part's name is taken
    with pytest.raises(RecordError):
        await sink.flush_async()
    assert sink.pending == 2
