"""Token chunks of a row as per-token arrays, one per training segment."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from hud_ray.errors import RecordError
from hud_ray.records import CHUNK


@dataclass(frozen=True, slots=True)
class Segment:
    """One training sequence of a rollout: ``tokens`` with, per position, the sampler's
    logprob (0 off model tokens), the loss mask and the advantage (already times mask)."""

    trace_id: str
    group_id: str
    segment: int
    tokens: np.ndarray  # int64
    logprobs: np.ndarray  # float32
    mask: np.ndarray  # float32, 1.0 on trainable model tokens
    advantages: np.ndarray  # float32
    prompt_len: int  # tokens before the first model chunk
    missing_logprobs: bool  # a trainable model chunk had no logprobs


#: the columns the adapters read (converting only these keeps them fast)
COLUMNS = ("trace_id", "group_id", "rollout_key", "prompt", "reward", "reward_valid",
           "status", "stop_reason", "policy_version", "chunks", "advantage", "trainable_row")


def pylist(table: pa.Table, *, chunks: bool = True) -> list[dict[str, Any]]:
    """``table`` rows as dicts, with just the columns the adapters use."""
    keep = [c for c in COLUMNS if c in table.column_names and (chunks or c != "chunks")]
    return table.select(keep).to_pylist()


def tables(source: Any) -> Iterator[pa.Table | dict[str, Any]]:
    """Row tables (with group columns) from a Group, groups, a table, run directories,
    or single row dicts."""
    from hud_ray.data.readers import Group, groups

    if isinstance(source, Group):
        yield source.rows
    elif isinstance(source, pa.Table):
        if "advantage" in source.column_names:
            yield source
        else:
            for g in groups(source):
                yield g.rows
    elif isinstance(source, str | Path):
        for g in groups(source):
            yield g.rows
    elif isinstance(source, dict):
        yield source
    elif isinstance(source, Iterable):
        for item in source:
            yield from tables(item)
    else:
        raise RecordError(f"cannot read rows from {type(source).__name__}")


def segments(source: Any, *, include_masked: bool = False) -> Iterator[Segment]:
    """Every training segment of ``source``, row by row, in order."""
    for item in tables(source):
        if isinstance(item, dict):
            yield from row_segments(item, include_masked=include_masked)
        else:
            for _, segs in table_segments(item, include_masked=include_masked):
                yield from segs


@dataclass(frozen=True, slots=True)
class _Chunk:
    segment: int
    kind: str
    tokens: np.ndarray
    logprobs: np.ndarray | None
    trainable: bool
    advantage: float | None


def _no_tokens(trace_id: Any) -> RecordError:
    return RecordError(f"rollout {trace_id}: no token data to train on (run a model agent "
                       "with return_token_ids against a server that returns token ids, e.g. "
                       "vLLM or sglang)")


def _trains(meta: dict[str, Any], advantage: float | None) -> tuple[bool, float | None]:
    adv = meta.get("advantage") if advantage is None else advantage
    return bool(meta.get("trainable_row", adv is not None)) and adv is not None, adv


def _build(trace_id: str, group_id: str, chunks: Sequence[_Chunk], trains: bool,
           adv: float | None) -> list[Segment]:
    by_segment: dict[int, list[_Chunk]] = {}
    for c in chunks:
        by_segment.setdefault(c.segment, []).append(c)
    out = []
    for seg, parts in sorted(by_segment.items()):
        if not any(c.kind == "model" for c in parts):
            continue
        lps: list[np.ndarray] = []
        mask: list[np.ndarray] = []
        advs: list[np.ndarray] = []
        prompt_len: int | None = None
        seen = 0
        missing = False
        for c in parts:
            n = len(c.tokens)
            if c.kind == "model":
                if prompt_len is None:
                    prompt_len = seen
                on = trains and c.trainable
                if c.logprobs is None:
                    missing = missing or on
                    lps.append(np.zeros(n, np.float32))
                else:
                    lps.append(c.logprobs)
                mask.append(np.full(n, 1.0 if on else 0.0, np.float32))
                a = c.advantage if c.advantage is not None else (adv or 0.0)
                advs.append(np.full(n, float(a) if on else 0.0, np.float32))
            else:
                zero = np.zeros(n, np.float32)
                lps.append(zero)
                mask.append(zero)
                advs.append(zero)
            seen += n
        out.append(Segment(
            trace_id=trace_id, group_id=group_id, segment=seg,
            tokens=np.concatenate([c.tokens for c in parts]).astype(np.int64),
            logprobs=np.concatenate(lps).astype(np.float32, copy=False),
            mask=np.concatenate(mask), advantages=np.concatenate(advs),
            prompt_len=prompt_len or 0, missing_logprobs=missing))
    return out


def row_segments(row: dict[str, Any], *, advantage: float | None = None,
                 include_masked: bool = False) -> list[Segment]:
    """The training segments of one row.

    The row's advantage is ``advantage`` or its ``advantage`` column; a chunk's own
    ``advantage`` overrides it. A row that does not train (``trainable_row`` false, or no
    advantage) gives no segments unless ``include_masked`` (then its mask is all zero); a
    row that trains but has no token chunks is a :class:`RecordError`."""
    trains, adv = _trains(row, advantage)
    if trains and row.get("chunks") is None:
        raise _no_tokens(row.get("trace_id"))
    if not row.get("chunks") or not (trains or include_masked):
        return []
    chunks = [_Chunk(c["segment"], c["kind"], np.asarray(c["tokens"] or [], np.int64),
                     None if c.get("logprobs") is None
                     else np.asarray(c["logprobs"], np.float32),
                     bool(c["trainable"]), c.get("advantage")) for c in row["chunks"]]
    return _build(row["trace_id"], row["group_id"], chunks, trains, adv)


_FIELDS = [f.name for f in CHUNK]


def table_segments(table: pa.Table, *, include_masked: bool = False
                   ) -> list[tuple[int, list[Segment]]]:
    """:func:`row_segments` for every row of ``table`` at once, reading the token and
    logprob buffers as NumPy views instead of Python lists (the fast path)."""
    names = [c for c in ("trace_id", "group_id", "advantage", "trainable_row")
             if c in table.column_names]
    meta = table.select(names).to_pylist()
    if "chunks" not in table.column_names or table.num_rows == 0:
        lists = pa.nulls(table.num_rows, pa.list_(CHUNK))
    else:
        lists = table["chunks"].combine_chunks()
    offs = lists.offsets.to_numpy()
    has = lists.is_valid().to_numpy(zero_copy_only=False)
    flat = lists.flatten()
    fields = dict(zip(_FIELDS, flat.flatten(), strict=True)) if len(flat) else {}
    if fields:
        segment = fields["segment"].to_numpy(zero_copy_only=False)
        kind = fields["kind"].to_pylist()
        trainable = fields["trainable"].to_numpy(zero_copy_only=False)
        chunk_adv = fields["advantage"].to_pylist()
        tok = fields["tokens"]
        tok_offs = tok.offsets.to_numpy()
        tok_vals = tok.flatten().to_numpy()
        lp = fields["logprobs"]
        lp_offs = lp.offsets.to_numpy()
        lp_vals = lp.flatten().to_numpy(zero_copy_only=False)
        lp_ok = lp.is_valid().to_numpy(zero_copy_only=False)
    out: list[tuple[int, list[Segment]]] = []
    base = offs[0] if len(offs) else 0
    for i, row in enumerate(meta):
        trains, adv = _trains(row, None)
        if trains and not has[i]:
            raise _no_tokens(row.get("trace_id"))
        lo, hi = offs[i] - base, offs[i + 1] - base
        if not has[i] or lo == hi or not (trains or include_masked):
            out.append((i, []))
            continue
        chunks = []
        for j in range(lo, hi):
            t0, t1 = tok_offs[j] - tok_offs[0], tok_offs[j + 1] - tok_offs[0]
            lpv = None
            if lp_ok[j]:
                l0, l1 = lp_offs[j] - lp_offs[0], lp_offs[j + 1] - lp_offs[0]
                lpv = lp_vals[l0:l1]
            chunks.append(_Chunk(int(segment[j]), kind[j], tok_vals[t0:t1], lpv,
                                 bool(trainable[j]), chunk_adv[j]))
        out.append((i, _build(row["trace_id"], row["group_id"], chunks, trains, adv)))
    return out
