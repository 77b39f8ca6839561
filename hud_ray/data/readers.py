"""Open runs as Arrow datasets, filter rows, iterate complete groups, follow a live run."""

from __future__ import annotations

import fnmatch
import logging
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from hud_ray.data.policy import GroupPolicy, GroupResult, apply_policy
from hud_ray.errors import RecordError
from hud_ray.records import SCHEMA, upgrade_table
from hud_ray.rundir import RunDir
from hud_ray.sink import (
    LEGACY_MANIFEST,
    LEGACY_SUMMARY,
    MANIFEST,
    PART_GLOB,
    SUMMARY,
    read_manifest,
    read_summary,
)

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

#: columns :func:`groups` and :func:`follow` add to each row of a complete group
GROUP_COLUMNS = pa.schema([
    pa.field("advantage", pa.float64()),  # null: the row does not train
    pa.field("trainable_row", pa.bool_(), nullable=False),
    pa.field("zero_variance", pa.bool_(), nullable=False),
    pa.field("group_kept", pa.bool_(), nullable=False),
])


def _is_run(run: RunDir) -> bool:
    names = run.names()
    return any(fnmatch.fnmatchcase(n, PART_GLOB) for n in names) or \
        MANIFEST in names or LEGACY_MANIFEST in names


def _runs(source: PathLike | Sequence[PathLike]) -> list[RunDir]:
    items = [source] if isinstance(source, str | os.PathLike) else list(source)
    out: list[RunDir] = []
    for item in items:
        run = RunDir.resolve(item)
        if not run.is_dir():
            raise RecordError(f"{run}: not a run directory")
        if _is_run(run):
            out.append(run)
            continue
        found = [d for d in run.subdirs() if _is_run(d)]
        if not found:
            raise RecordError(f"{run}: no hud-ray run directories inside")
        out.extend(found)
    return out


def run_dirs(source: PathLike | Sequence[PathLike]) -> list[Path | str]:
    """The run directories in ``source``: one run, a list of runs, or a sweep folder
    (a folder whose sub-folders, at any depth, are runs). Each is a path or a URI
    (``s3://...``); URI runs come back as URIs."""
    return [run.public for run in _runs(source)]


def dataset(source: PathLike | Sequence[PathLike]) -> ds.Dataset:
    """One run, many runs or a sweep (paths or URIs) as one ``pyarrow.dataset`` in the
    current schema (parts from older schema versions read with the newer columns null)."""
    runs = _runs(source)
    local = [run.key(n) for run in runs if run.local for n in run.glob(PART_GLOB)]
    remote = [ds.dataset([run.key(n) for n in run.glob(PART_GLOB)], filesystem=run.fs,
                         format="ipc", schema=SCHEMA) for run in runs if not run.local]
    if not remote:
        return ds.dataset(local, format="ipc", schema=SCHEMA)
    if local:
        remote.insert(0, ds.dataset(local, format="ipc", schema=SCHEMA))
    return remote[0] if len(remote) == 1 else ds.dataset(remote)


def read(source: PathLike | Sequence[PathLike], *, final: bool | None = True,
         valid: bool | None = None, status: str | Iterable[str] | None = None,
         task: str | Iterable[str] | None = None, model: str | Iterable[str] | None = None,
         policy_versions: tuple[int | None, int | None] | None = None,
         columns: list[str] | None = None) -> pa.Table:
    """Rows of ``source`` matching every filter given.

    ``final`` (default True) keeps the attempt that settled each rollout key;
    ``valid`` filters on ``reward_valid``; ``task`` matches the slug or template id;
    ``policy_versions=(lo, hi)`` keeps ``lo <= policy_version <= hi`` (either bound may
    be None)."""
    expr = filter_expression(final=final, valid=valid, status=status, task=task, model=model,
                             policy_versions=policy_versions)
    return dataset(source).to_table(columns=columns, filter=expr)


def filter_expression(*, final: bool | None = True, valid: bool | None = None,
                      status: str | Iterable[str] | None = None,
                      task: str | Iterable[str] | None = None,
                      model: str | Iterable[str] | None = None,
                      policy_versions: tuple[int | None, int | None] | None = None
                      ) -> ds.Expression | None:
    """The dataset filter behind :func:`read` (also usable on a ``pyarrow.dataset``)."""
    parts: list[ds.Expression] = []
    if final is not None:
        parts.append(ds.field("final") == final)
    if valid is not None:
        parts.append(ds.field("reward_valid") == valid)
    if status is not None:
        parts.append(ds.field("status").isin(_many(status)))
    if task is not None:
        names = _many(task)
        parts.append(ds.field("slug").isin(names) | ds.field("template_id").isin(names))
    if model is not None:
        parts.append(ds.field("model").isin(_many(model)))
    if policy_versions is not None:
        lo, hi = policy_versions
        if lo is not None:
            parts.append(ds.field("policy_version") >= lo)
        if hi is not None:
            parts.append(ds.field("policy_version") <= hi)
    if not parts:
        return None
    expr = parts[0]
    for p in parts[1:]:
        expr = expr & p
    return expr


def _many(value: str | Iterable[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


@dataclass(frozen=True)
class Group:
    """One complete group: its final rows (by sample index) with advantages attached."""

    group_id: str
    slug: str
    size: int
    rows: pa.Table  # the run's columns plus GROUP_COLUMNS
    result: GroupResult
    run_dir: Path | str | None = None  # a URI for runs on an object store

    @property
    def kept(self) -> bool:
        return self.result.kept

    @property
    def zero_variance(self) -> bool:
        return self.result.zero_variance


def group_policy_of(run_dir: PathLike) -> GroupPolicy:
    """The group policy recorded in a run's manifest (the default for older runs)."""
    try:
        manifest = read_manifest(run_dir)
    except RecordError:
        return GroupPolicy()
    raw = manifest.get("group_policy") or (manifest.get("config") or {}).get("group_policy")
    return GroupPolicy.parse(raw)


def _group_size_of(run_dir: PathLike | RunDir | None) -> int | None:
    if run_dir is None:
        return None
    try:
        size = (read_manifest(run_dir).get("config") or {}).get("group_size")
    except RecordError:
        return None
    return int(size) if isinstance(size, int) else None


def make_group(rows: pa.Table, policy: GroupPolicy, *, size: int,
               run_dir: Path | str | None = None) -> Group:
    """A :class:`Group` from the final rows of one complete group, in sample order."""
    result = apply_policy(rows["reward"].to_pylist(), rows["reward_valid"].to_pylist(),
                          policy, size)
    n = rows.num_rows
    extra = [pa.array(result.advantages, pa.float64()), pa.array(result.trainable, pa.bool_()),
             pa.array([result.zero_variance] * n, pa.bool_()),
             pa.array([result.kept] * n, pa.bool_())]
    for field, col in zip(GROUP_COLUMNS, extra, strict=True):
        rows = rows.append_column(field, col)
    return Group(group_id=rows["group_id"][0].as_py(), slug=rows["slug"][0].as_py(),
                 size=size, rows=rows, result=result, run_dir=run_dir)


class _Collector:
    """Gathers final rows per group; hands out each group once, when it completes."""

    def __init__(self, policy: GroupPolicy | None, run_dir: Path | str | None) -> None:
        self.policy = policy
        self.run_dir = run_dir
        self.default_size = _group_size_of(run_dir)
        self.parts: dict[str, list[pa.Table]] = {}  # group id -> its row batches so far
        self.where: dict[str, dict[int, int]] = {}  # group id -> sample -> row in concat
        self.count: dict[str, int] = {}
        self.sizes: dict[str, int] = {}
        self.done: set[str] = set()

    def add(self, table: pa.Table) -> list[Group]:
        table = table.filter(pc.field("final"))
        if table.num_rows == 0:
            return []
        # one sort (stable: a later final row for a sample stays later), then zero-copy
        # slices per group
        table = table.sort_by([("group_id", "ascending")])
        gids = table["group_id"].to_pylist()
        samples = table["sample_index"].to_pylist()
        sizes = table["group_size"].to_pylist()
        spans: dict[str, tuple[int, int]] = {}
        start = 0
        for i in range(1, len(gids) + 1):
            if i == len(gids) or gids[i] != gids[start]:
                spans[gids[start]] = (start, i)
                start = i
        out = []
        for gid, (lo, hi) in spans.items():
            if gid in self.done:
                log.warning("group %s: a final row after the group completed (ignored)", gid)
                continue
            self.parts.setdefault(gid, []).append(table.slice(lo, hi - lo))
            where = self.where.setdefault(gid, {})
            base = self.count.get(gid, 0)
            for j in range(hi - lo):
                where[samples[lo + j]] = base + j  # a later final row for a sample wins
            self.count[gid] = base + hi - lo
            size = sizes[hi - 1] or self.sizes.get(gid) or self.default_size
            if not size:
                continue
            self.sizes[gid] = size
            if any(s not in where for s in range(size)):
                continue
            parts = self.parts.pop(gid)
            order = [where[s] for s in range(size)]
            rows = parts[0] if len(parts) == 1 and order == list(range(size)) else \
                pa.concat_tables(parts).take(order)
            del self.where[gid], self.count[gid]
            self.done.add(gid)
            if self.policy is None:
                self.policy = group_policy_of(self.run_dir) if self.run_dir else GroupPolicy()
            out.append(make_group(rows, self.policy, size=size, run_dir=self.run_dir))
        return out


def groups(source: PathLike | Sequence[PathLike] | pa.Table, *,
           policy: GroupPolicy | dict[str, Any] | str | None = None,
           kept_only: bool = False) -> Iterator[Group]:
    """Every complete group in ``source`` (runs, a sweep, or a table of rows), with
    advantages from ``policy`` (default: the one in each run's manifest)."""
    pol = GroupPolicy.parse(policy) if policy is not None else None
    if isinstance(source, pa.Table):
        sources: list[tuple[Path | str | None, pa.Table]] = [(None, upgrade_table(source))]
    else:
        sources = [(run, dataset(run).to_table(filter=ds.field("final") == True))  # noqa: E712
                   for run in run_dirs(source)]
    for run, table in sources:
        for group in _Collector(pol, run).add(table):
            if group.kept or not kept_only:
                yield group


def follow(run_dir: PathLike, *, policy: GroupPolicy | dict[str, Any] | str | None = None,
           poll: float = 0.2, idle_timeout: float | None = None,
           kept_only: bool = False) -> Iterator[Group]:
    """Yield each group of a (running) eval exactly once, as it completes.

    Reads each new part file once, as it appears; keeps following across an interrupted
    and resumed run in the same directory. Stops when the run has written its summary
    and every part is read, or when nothing new arrived for ``idle_timeout`` seconds.
    """
    run = RunDir.resolve(run_dir)
    pol = GroupPolicy.parse(policy) if policy is not None else None
    collector = _Collector(pol, run.public if run.is_dir() else None)
    seen: set[str] = set()
    last_new = time.monotonic()
    while True:
        names = run.names()  # one listing per poll (on an object store: one request)
        present = bool(names) or (run.local and run.is_dir())
        if collector.run_dir is None and present:
            collector = _Collector(pol, run.public)
        finished = bool({SUMMARY, LEGACY_SUMMARY} & set(names)) and \
            read_summary(run) is not None
        new = [n for n in run.glob(PART_GLOB) if n not in seen] if present else []
        for name in new:
            seen.add(name)
            table = upgrade_table(run.read_table(name))
            if collector.default_size is None:
                collector.default_size = _group_size_of(run)
            for group in collector.add(table):
                if group.kept or not kept_only:
                    yield group
        if new:
            last_new = time.monotonic()
        elif finished:
            return
        elif idle_timeout is not None and time.monotonic() - last_new > idle_timeout:
            return
        else:
            time.sleep(poll)
