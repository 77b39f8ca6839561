"""One run directory reads the same with pyarrow, pandas, polars, duckdb and HF datasets;
``hud-ray export`` writes each format."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pytest
from _data_support import shared_tool_run

from hud_ray import read_rollouts

pytestmark = pytest.mark.ray
BIN = Path(sys.executable).parent / "hud-ray"
KEYS = ["trace_id", "reward", "status", "group_size", "policy_version"]


@pytest.fixture(scope="module")
def run(ray_session, tmp_path_factory):
    return shared_tool_run(tmp_path_factory, group_policy="keep_partial:2")


@pytest.fixture(scope="module")
def expected(run):
    rows = read_rollouts(run).to_pylist()
    return sorted(({k: r[k] for k in KEYS} | {"tokens": _tokens(r["chunks"])} for r in rows),
                  key=lambda r: r["trace_id"])


def _tokens(chunks) -> list[int]:
    return [t for c in chunks or () for t in c["tokens"]]


def _same(rows, expected) -> None:
    got = sorted(({k: r[k] for k in KEYS} | {"tokens": _tokens(r["chunks"])} for r in rows),
                 key=lambda r: r["trace_id"])
    assert got == expected and any(r["tokens"] for r in got)


def test_pyarrow_dataset(run, expected):
    table = ds.dataset(run, format="arrow").to_table()  # _manifest/_summary are skipped
    _same(table.to_pylist(), expected)


def test_pandas(run, expected):
    import pandas as pd

    frame = pd.concat([pd.read_feather(p) for p in sorted(run.glob("rollouts-*.arrow"))])
    rows = frame.to_dict("records")
    for r in rows:
        r["chunks"] = [dict(c, tokens=list(c["tokens"])) for c in r["chunks"]] \
            if r["chunks"] is not None else None
        for k in ("policy_version", "reward"):
            r[k] = None if pd.isna(r[k]) else r[k]
    _same(rows, expected)


def test_polars(run, expected):
    pl = pytest.importorskip("polars")
    _same(pl.scan_ipc(str(run / "rollouts-*.arrow")).collect().to_dicts(), expected)


def test_duckdb(run, expected):
    duckdb = pytest.importorskip("duckdb")
    dataset = ds.dataset(run, format="arrow")
    con = duckdb.connect()
    table = con.sql("select * from dataset").arrow()
    table = table.read_all() if isinstance(table, pa.RecordBatchReader) else table
    _same(table.to_pylist(), expected)
    n = con.execute("select count(*) from (select unnest(chunks) as chunk from dataset) "
                    "where chunk.kind = 'model'").fetchone()[0]
    assert n == sum(1 for r in read_rollouts(run).to_pylist() for c in r["chunks"] or ()
                    if c["kind"] == "model")


def test_hf_datasets(run, expected):
    datasets = pytest.importorskip("datasets")
    files = [str(p) for p in sorted(run.glob("rollouts-*.arrow"))]
    data = datasets.load_dataset("arrow", data_files=files, split="train")
    _same(data.to_list(), expected)


@pytest.mark.parametrize("fmt", ["parquet", "jsonl", "tinker", "slime", "sft", "hf"])
def test_export_command(run, tmp_path, fmt):
    if fmt == "hf":
        pytest.importorskip("datasets")
    if fmt == "slime":
        pytest.importorskip("torch")
    out = tmp_path / ("out" if fmt == "hf" else f"out.{fmt}")
    proc = subprocess.run([str(BIN), "export", str(run), "--format", fmt, "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["groups"] == 3 and Path(info["out"]).exists()
    if fmt == "parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(out)
        assert table.num_rows == 12 and "advantage" in table.column_names
    elif fmt == "jsonl":
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        assert len(rows) == 12 and sum(r["advantage"] or 0 for r in rows) == pytest.approx(0)
    elif fmt == "tinker":
        datums = [json.loads(line) for line in out.read_text().splitlines()]
        assert len(datums) == info["datums"] == 22  # 11 valid rollouts x 2 segments
        assert all(set(d["loss_fn_inputs"]) == {"target_tokens", "logprobs", "advantages"}
                   for d in datums)
    elif fmt == "sft":
        assert len(out.read_text().splitlines()) == 3


def test_export_refuses_bad_input(tmp_path):
    bad = subprocess.run([str(BIN), "export", str(tmp_path), "--format", "parquet", "--out",
                          str(tmp_path / "x.parquet")], capture_output=True, text=True,
                         timeout=60)
    # not a run directory: a RecordError, exit 3 like every run-directory error
    assert bad.returncode == 3 and "Traceback" not in bad.stderr, bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert "no hud-ray run directories" in bad.stderr
