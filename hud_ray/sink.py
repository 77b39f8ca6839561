"""Streaming Arrow writer for a run directory, reading it back, and resume.

A run directory holds ``manifest.json`` (config, taskset digest, schema version),
``rollouts-NNNNNN.arrow`` parts (Arrow IPC files, each complete and readable the
moment it appears: written to a temp name, then renamed), and ``summary.json`` once
the run ends. Rows are flushed every ``flush_rows`` rows or ``flush_seconds``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from hud_ray.errors import RecordError
from hud_ray.records import SCHEMA, SCHEMA_VERSION, RolloutRecord

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
SUMMARY = "summary.json"
PART_GLOB = "rollouts-*.arrow"


def _parts(directory: Path) -> list[Path]:
    return sorted(directory.glob(PART_GLOB))


def read_rollouts(directory: str | os.PathLike[str]) -> pa.Table:
    """All rows written so far to a run directory (works mid-run)."""
    path = Path(directory)
    if not path.is_dir():
        raise RecordError(f"{path}: not a run directory")
    tables = []
    for part in _parts(path):
        try:
            with pa.memory_map(str(part)) as source:
                tables.append(pa.ipc.open_file(source).read_all())
        except (pa.ArrowInvalid, OSError) as exc:
            raise RecordError(f"{part}: unreadable Arrow part: {exc}") from None
    if not tables:
        return SCHEMA.empty_table()
    return pa.concat_tables(tables, promote_options="none")


def read_manifest(directory: str | os.PathLike[str]) -> dict[str, Any]:
    path = Path(directory) / MANIFEST
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise RecordError(f"{path.parent}: no {MANIFEST}; not a hud-ray run directory") from None
    except json.JSONDecodeError as exc:
        raise RecordError(f"{path}: corrupt manifest: {exc}") from None


class ResumeState:
    """What an earlier run in the same directory already settled."""

    def __init__(self, done: set[str], attempts: dict[str, int], rows: int) -> None:
        self.done = done
        self.attempts = attempts
        self.rows = rows

    @classmethod
    def scan(cls, directory: Path) -> ResumeState:
        table = read_rollouts(directory).select(["rollout_key", "attempt", "final"])
        if table.num_rows == 0:
            return cls(set(), {}, 0)
        done = set(pc.filter(table["rollout_key"], table["final"]).to_pylist())
        grouped = table.group_by("rollout_key").aggregate([("attempt", "max")])
        attempts = dict(zip(grouped["rollout_key"].to_pylist(),
                            grouped["attempt_max"].to_pylist(), strict=True))
        return cls(done, attempts, table.num_rows)


class ArrowSink:
    """Buffers records and writes them as complete Arrow IPC part files."""

    def __init__(self, directory: str | os.PathLike[str], *, flush_rows: int = 2000,
                 flush_seconds: float = 2.0) -> None:
        self.directory = Path(directory)
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self._buffer: list[dict[str, Any]] = []
        self._last_flush = time.monotonic()
        self.rows_written = 0
        self.bytes_written = 0
        existing = _parts(self.directory) if self.directory.exists() else []
        self._seq = (int(existing[-1].stem.split("-")[1]) + 1) if existing else 0

    def open(self, manifest: dict[str, Any]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        manifest = {"schema_version": SCHEMA_VERSION, **manifest}
        _write_json(self.directory / MANIFEST, manifest)

    def write(self, records: Iterable[RolloutRecord]) -> None:
        self.write_rows([r.to_row() for r in records])

    def write_rows(self, rows: list[dict[str, Any]]) -> None:
        """Buffer rows already in column form (``RolloutRecord.to_row()``)."""
        self._buffer.extend(rows)
        if len(self._buffer) >= self.flush_rows or (
                self._buffer and time.monotonic() - self._last_flush >= self.flush_seconds):
            self.flush()

    def maybe_flush(self) -> None:
        if self._buffer and time.monotonic() - self._last_flush >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        self._last_flush = time.monotonic()
        if not self._buffer:
            return
        rows, self._buffer = self._buffer, []
        table = pa.Table.from_pylist(rows, schema=SCHEMA)
        final = self.directory / f"rollouts-{self._seq:06d}.arrow"
        tmp = final.with_suffix(".arrow.tmp")
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, SCHEMA) as writer:
            writer.write_table(table)
        os.replace(tmp, final)
        self._seq += 1
        self.rows_written += table.num_rows
        self.bytes_written += final.stat().st_size

    def close(self, summary: dict[str, Any] | None = None) -> None:
        self.flush()
        if summary is not None:
            _write_json(self.directory / SUMMARY,
                        {"finished_at": datetime.now(UTC).isoformat(), **summary})


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(tmp, path)
