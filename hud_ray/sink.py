"""Streaming Arrow writer for a run directory, reading it back, and resume.

A run directory holds ``_manifest.json`` (config, taskset digest, schema version),
``rollouts-NNNNNN.arrow`` parts (Arrow IPC files, each complete and readable the
moment it appears) and ``_summary.json`` once the run ends. It is a local path or any
URI ``pyarrow.fs`` understands (``file://``, ``s3://``, ``gs://``, ...; see
:mod:`hud_ray.rundir` for how each is written whole). Names starting with ``_`` or
``.`` are skipped by dataset readers, so ``pyarrow.dataset.dataset(run_dir,
format="arrow")`` opens the parts alone. Run directories from before that layout
(``manifest.json``, ``summary.json``) still read.

Rows are flushed every ``flush_rows`` rows or ``flush_seconds``. A write that fails
keeps its rows buffered and raises a :class:`RecordError` (``sink_write_failed``):
rows are never dropped silently.
"""

from __future__ import annotations

import asyncio
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
from hud_ray.records import SCHEMA, SCHEMA_VERSION, RolloutRecord, upgrade_table
from hud_ray.rundir import Location, RunDir, one_line

log = logging.getLogger(__name__)

MANIFEST = "_manifest.json"
SUMMARY = "_summary.json"
LEGACY_MANIFEST = "manifest.json"
LEGACY_SUMMARY = "summary.json"
PART_GLOB = "rollouts-*.arrow"


def read_rollouts(directory: Location | RunDir) -> pa.Table:
    """All rows written so far to a run directory, a path or URI (works mid-run), in the
    current schema (parts written by an older schema version get the newer columns as
    nulls)."""
    run = RunDir.resolve(directory)
    if not run.is_dir():
        raise RecordError(f"{run}: not a run directory")
    tables = [upgrade_table(run.read_table(name)) for name in run.glob(PART_GLOB)]
    if not tables:
        return SCHEMA.empty_table()
    return pa.concat_tables(tables, promote_options="none")


def manifest_path(directory: str | os.PathLike[str]) -> Path | None:
    """The (local) run directory's manifest file (current or legacy name), if any."""
    for name in (MANIFEST, LEGACY_MANIFEST):
        path = Path(directory) / name
        if path.is_file():
            return path
    return None


def _read_json(run: RunDir, names: tuple[str, ...], what: str) -> Any:
    """The first of ``names`` that exists, parsed; None when none does."""
    for name in names:
        raw = run.read_bytes(name)
        if raw is None:
            continue
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RecordError(f"{run.where(name)}: corrupt {what}: {exc}") from None
    return None


def read_manifest(directory: Location | RunDir) -> dict[str, Any]:
    run = RunDir.resolve(directory)
    data = _read_json(run, (MANIFEST, LEGACY_MANIFEST), "manifest")
    if data is None:
        raise RecordError(f"{run}: no {MANIFEST}; not a hud-ray run directory")
    if not isinstance(data, dict):
        raise RecordError(f"{run.where(MANIFEST)}: corrupt manifest: not a JSON object")
    return data


def read_summary(directory: Location | RunDir) -> dict[str, Any] | None:
    """The summary a finished run wrote (current or legacy name), or None."""
    data = _read_json(RunDir.resolve(directory), (SUMMARY, LEGACY_SUMMARY), "summary")
    return data if isinstance(data, dict) else None


class ResumeState:
    """What an earlier run in the same directory already settled."""

    def __init__(self, done: set[str], attempts: dict[str, int], rows: int) -> None:
        self.done = done
        self.attempts = attempts
        self.rows = rows

    @classmethod
    def scan(cls, directory: Location | RunDir) -> ResumeState:
        table = read_rollouts(directory).select(["rollout_key", "attempt", "final"])
        if table.num_rows == 0:
            return cls(set(), {}, 0)
        done = set(pc.filter(table["rollout_key"], table["final"]).to_pylist())
        grouped = table.group_by("rollout_key").aggregate([("attempt", "max")])
        attempts = dict(zip(grouped["rollout_key"].to_pylist(),
                            grouped["attempt_max"].to_pylist(), strict=True))
        return cls(done, attempts, table.num_rows)


class ArrowSink:
    """Buffers records and writes them as complete Arrow IPC part files.

    :meth:`flush` writes in the calling thread; :meth:`flush_async` writes in a worker
    thread so the event loop keeps serving (one write at a time, in buffer order).
    Either way a failed write leaves its rows in the buffer and raises
    :class:`RecordError` with ``code="sink_write_failed"``.
    """

    def __init__(self, directory: Location | RunDir, *, flush_rows: int = 2000,
                 flush_seconds: float = 2.0) -> None:
        self.run_dir = RunDir.resolve(directory)
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self._buffer: list[dict[str, Any]] = []
        self._last_flush = time.monotonic()
        self._lock = asyncio.Lock()
        self.rows_written = 0
        self.bytes_written = 0
        existing = self.run_dir.glob(PART_GLOB)
        self._seq = (int(existing[-1].split("-")[1].split(".")[0]) + 1) if existing else 0

    @property
    def directory(self) -> Path:
        """The local run directory (a URI run has none: see :attr:`run_dir`)."""
        return self.run_dir.local_path

    @property
    def pending(self) -> int:
        """Rows accepted but not yet on disk."""
        return len(self._buffer)

    def open(self, manifest: dict[str, Any]) -> None:
        try:
            self.run_dir.mkdir()
        except (OSError, RecordError) as exc:
            raise RecordError(f"{self.run_dir}: cannot create run directory: {exc}",
                              code="sink_write_failed") from None
        _write_json(self.run_dir, MANIFEST, {"schema_version": SCHEMA_VERSION, **manifest})
        _drop_legacy(self.run_dir, LEGACY_MANIFEST)  # an old-layout dir, now resumed

    def write(self, records: Iterable[RolloutRecord]) -> None:
        self.write_rows([r.to_row() for r in records])

    def write_rows(self, rows: list[dict[str, Any]]) -> None:
        """Buffer rows (``RolloutRecord.to_row()`` form) and flush here when one is due."""
        self.add(rows)
        if self.due():
            self.flush()

    def add(self, rows: list[dict[str, Any]]) -> None:
        """Buffer rows without writing (the caller flushes, e.g. with :meth:`flush_async`)."""
        self._buffer.extend(rows)

    def due(self) -> bool:
        return len(self._buffer) >= self.flush_rows or (
            bool(self._buffer) and time.monotonic() - self._last_flush >= self.flush_seconds)

    def maybe_flush(self) -> None:
        if self.due():
            self.flush()

    def flush(self) -> None:
        """Write every buffered row as one part, in this thread."""
        self._last_flush = time.monotonic()
        n = len(self._buffer)
        if n:
            self._commit(n, self._write_part(self._buffer[:n], self._seq))

    async def flush_async(self) -> None:
        """Write every buffered row as one part, in a worker thread."""
        async with self._lock:
            self._last_flush = time.monotonic()
            n = len(self._buffer)
            if n:
                size = await asyncio.to_thread(self._write_part, self._buffer[:n], self._seq)
                self._commit(n, size)

    def _commit(self, n: int, size: int) -> None:
        del self._buffer[:n]
        self._seq += 1
        self.rows_written += n
        self.bytes_written += size

    def _write_part(self, rows: list[dict[str, Any]], seq: int) -> int:
        """Write ``rows`` as part ``seq``, whole or not at all; returns its size."""
        name = f"rollouts-{seq:06d}.arrow"
        try:
            table = pa.Table.from_pylist(rows, schema=SCHEMA)
            buffer = pa.BufferOutputStream()
            with pa.ipc.new_file(buffer, SCHEMA) as writer:
                writer.write_table(table)
            return self.run_dir.write_bytes(name, buffer.getvalue())
        except (OSError, pa.ArrowException) as exc:
            raise RecordError(f"{self.run_dir.where(name)}: writing {len(rows)} rows failed: "
                              f"{one_line(exc)}", code="sink_write_failed") from exc

    def close(self, summary: dict[str, Any] | None = None) -> None:
        self.flush()
        if summary is not None:
            _write_json(self.run_dir, SUMMARY,
                        {"finished_at": datetime.now(UTC).isoformat(), **summary})
            _drop_legacy(self.run_dir, LEGACY_SUMMARY)


def _drop_legacy(run: RunDir, name: str) -> None:
    """Remove an old-layout file once its replacement is written (dataset readers choke
    on ``*.json`` beside the parts)."""
    try:
        run.delete(name)
    except (OSError, pa.ArrowException) as exc:
        log.warning("%s: could not remove the old-layout file: %s", run.where(name), exc)


def _write_json(run: RunDir, name: str, data: dict[str, Any]) -> None:
    body = (json.dumps(data, indent=2, default=str) + "\n").encode()
    try:
        run.write_bytes(name, body)
    except (OSError, pa.ArrowException) as exc:
        raise RecordError(f"{run.where(name)}: write failed: {one_line(exc)}",
                          code="sink_write_failed") from exc
