"""Token chunks of a row as per-token arrays, one per training segment."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from hud_ray.errors import RecordError


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


def pylist(table: pa.Table) -> list[dict[str, Any]]:
    """``table`` rows as dicts, with just the columns the adapters use."""
    return table.select([c for c in COLUMNS if c in table.column_names]).to_pylist()


def _row_dicts(source: Any) -> Iterator[dict[str, Any]]:
    """Rows (with group columns) from a Group, groups, a table, or run directories."""
    from hud_ray.data.readers import Group, groups

    if isinstance(source, Group):
        yield from pylist(source.rows)
    elif isinstance(source, pa.Table):
        if "advantage" in source.column_names:
            yield from pylist(source)
        else:
            for g in groups(source):
                yield from pylist(g.rows)
    elif isinstance(source, str | Path):
        for g in groups(source):
            yield from pylist(g.rows)
    elif isinstance(source, dict):
        yield source
    elif isinstance(source, Iterable):
        for item in source:
            yield from _row_dicts(item)
    else:
        raise RecordError(f"cannot read rows from {type(source).__name__}")


def row_segments(row: dict[str, Any], *, advantage: float | None = None,
                 include_masked: bool = False) -> list[Segment]:
    """The training segments of one row.

    The row's advantage is ``advantage`` or its ``advantage`` column; a chunk's own
    ``advantage`` overrides it. A row that does not train (``trainable_row`` false, or no
    advantage) gives no segments unless ``include_masked`` (then its mask is all zero); a
    row that trains but has no token chunks is a :class:`RecordError`."""
    chunks: Sequence[dict[str, Any]] = row.get("chunks") or ()
    adv = row.get("advantage") if advantage is None else advantage
    trains = bool(row.get("trainable_row", adv is not None)) and adv is not None
    if trains and row.get("chunks") is None:
        raise RecordError(f"rollout {row.get('trace_id')}: no token data to train on (run a "
                          "model agent with return_token_ids against a server that returns "
                          "token ids, e.g. vLLM or sglang)")
    if not chunks or not (trains or include_masked):
        return []
    by_segment: dict[int, list[dict[str, Any]]] = {}
    for c in chunks:
        by_segment.setdefault(c["segment"], []).append(c)
    out = []
    for seg, parts in sorted(by_segment.items()):
        if not any(c["kind"] == "model" for c in parts):
            continue
        tokens: list[int] = []
        lps: list[float] = []
        mask: list[float] = []
        advs: list[float] = []
        prompt_len = None
        missing = False
        for c in parts:
            toks = c["tokens"] or []
            n = len(toks)
            tokens.extend(toks)
            if c["kind"] == "model":
                if prompt_len is None:
                    prompt_len = len(tokens) - n
                on = trains and c["trainable"]
                lp = c.get("logprobs")
                if lp is None:
                    missing = missing or on
                    lp = [0.0] * n
                lps.extend(lp)
                mask.extend([1.0 if on else 0.0] * n)
                a = c.get("advantage")
                value = float(a if a is not None else (adv or 0.0)) if on else 0.0
                advs.extend([value] * n)
            else:
                lps.extend([0.0] * n)
                mask.extend([0.0] * n)
                advs.extend([0.0] * n)
        out.append(Segment(
            trace_id=row["trace_id"], group_id=row["group_id"], segment=seg,
            tokens=np.asarray(tokens, dtype=np.int64),
            logprobs=np.asarray(lps, dtype=np.float32),
            mask=np.asarray(mask, dtype=np.float32),
            advantages=np.asarray(advs, dtype=np.float32),
            prompt_len=prompt_len or 0, missing_logprobs=missing))
    return out
