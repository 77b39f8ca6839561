"""The rollout record and its Arrow schema, declared once and versioned.

One row per rollout attempt. Failed attempts are rows too: ``status`` says what
happened, ``reward_valid`` whether ``reward`` means anything (a failed rollout has a
null reward, never a disguised 0.0). ``final`` marks the attempt that settles its
rollout key (``slug#sample_index``); a trainer keeps ``final & reward_valid`` rows.

Schema 2 adds training columns: ``chunks`` holds the rollout's tokens as typed spans
(``prompt`` | ``model`` | ``env``) in training segments (see :func:`build_chunks`),
plus ``group_size``, ``policy_version``, ``sampling``, ``logprobs_mode``,
``tokenizer``/``renderer``, the per-call time to first token, reasoning and cached token
counts, and the task's extra ``columns`` (JSON); ``subscores`` becomes a list of
``{key, value}`` pairs (an Arrow map before, which HF ``datasets`` cannot read). Parts
written under schema 1 still read: :func:`upgrade_table` fills the new columns with
nulls and casts the old map.

Never reorder or retype a column without bumping :data:`SCHEMA_VERSION`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
from pydantic import BaseModel, Field

from hud_ray.types import Status

SCHEMA_VERSION = "2"

_ids = pa.list_(pa.list_(pa.int32()))

#: chunk kinds: the leading context of a segment, sampled tokens, and tokens inserted
#: between turns (tool results, user messages, the next generation prompt)
CHUNK_KINDS = ("prompt", "model", "env")
LOGPROBS_MODES = ("raw", "processed", "none")

CHUNK = pa.struct([
    pa.field("segment", pa.int16(), nullable=False),
    pa.field("turn", pa.int16(), nullable=False),
    pa.field("kind", pa.string(), nullable=False),
    pa.field("tokens", pa.list_(pa.int32()), nullable=False),
    pa.field("logprobs", pa.list_(pa.float32())),
    pa.field("trainable", pa.bool_(), nullable=False),
    pa.field("reward", pa.float32()),
    pa.field("advantage", pa.float32()),
    pa.field("finish_reason", pa.string()),
])

#: name -> value pairs (a map in schema 1; HF ``datasets`` cannot read Arrow maps)
_SUBSCORES = pa.list_(pa.struct([pa.field("key", pa.string(), nullable=False),
                                 pa.field("value", pa.float64())]))

SAMPLING = pa.struct([
    pa.field("temperature", pa.float32()),
    pa.field("top_p", pa.float32()),
    pa.field("top_k", pa.int32()),
    pa.field("max_tokens", pa.int32()),
    pa.field("seed", pa.int64()),
])

SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("trace_id", pa.string(), nullable=False),
        pa.field("rollout_key", pa.string(), nullable=False),
        pa.field("slug", pa.string(), nullable=False),
        pa.field("env", pa.string(), nullable=False),
        pa.field("template_id", pa.string(), nullable=False),
        pa.field("args", pa.string(), nullable=False),  # JSON text
        pa.field("group_id", pa.string(), nullable=False),
        pa.field("sample_index", pa.int32(), nullable=False),
        pa.field("attempt", pa.int32(), nullable=False),
        pa.field("final", pa.bool_(), nullable=False),
        pa.field("agent", pa.string(), nullable=False),
        pa.field("model", pa.string()),
        pa.field("prompt", pa.string()),
        pa.field("answer", pa.string()),
        pa.field("reward", pa.float64()),
        pa.field("reward_valid", pa.bool_(), nullable=False),
        pa.field("subscores", _SUBSCORES),  # schema 1: map<string, double>
        pa.field("grade_info", pa.string()),  # JSON text
        pa.field("status", pa.string(), nullable=False),
        pa.field("error_type", pa.string()),
        pa.field("error_message", pa.string()),
        pa.field("retryable", pa.bool_(), nullable=False),
        pa.field("stop_reason", pa.string()),
        pa.field("started_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("ended_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("duration_s", pa.float64(), nullable=False),
        pa.field("start_s", pa.float64()),
        pa.field("agent_s", pa.float64()),
        pa.field("grade_s", pa.float64()),
        pa.field("num_steps", pa.int32(), nullable=False),
        pa.field("steps", pa.string()),  # JSON text: the transcript
        pa.field("prompt_tokens", pa.int64()),
        pa.field("completion_tokens", pa.int64()),
        pa.field("model_calls", pa.int32()),
        pa.field("call_latencies", pa.list_(pa.float64())),
        pa.field("prompt_token_ids", _ids),
        pa.field("completion_token_ids", _ids),
        pa.field("completion_logprobs", pa.list_(pa.list_(pa.float32()))),
        pa.field("worker", pa.string()),
        # ---- schema 2 ----
        pa.field("first_token_latencies", pa.list_(pa.float64())),
        pa.field("reasoning_tokens", pa.int64()),
        pa.field("cached_tokens", pa.int64()),
        pa.field("columns", pa.string()),  # JSON text: the task's extra columns
        pa.field("group_size", pa.int32()),
        pa.field("policy_version", pa.int64()),
        pa.field("sampling", SAMPLING),
        pa.field("logprobs_mode", pa.string()),
        pa.field("tokenizer", pa.string()),
        pa.field("renderer", pa.string()),
        pa.field("chunks", pa.list_(CHUNK)),
    ],
    metadata={"hud_ray.schema_version": SCHEMA_VERSION},
)

COLUMNS: tuple[str, ...] = tuple(SCHEMA.names)


def rollout_key(slug: str, sample_index: int) -> str:
    return f"{slug}#{sample_index}"


class RolloutRecord(BaseModel):
    """One rollout attempt, as written to Arrow (field order = column order)."""

    run_id: str
    trace_id: str
    rollout_key: str
    slug: str
    env: str
    template_id: str
    args: str
    group_id: str
    sample_index: int
    attempt: int
    final: bool
    agent: str
    model: str | None = None
    prompt: str | None = None
    answer: str | None = None
    reward: float | None = None
    reward_valid: bool = False
    subscores: dict[str, float] | None = None
    grade_info: str | None = None
    status: Status
    error_type: str | None = None
    error_message: str | None = None
    retryable: bool = False
    stop_reason: str | None = None
    started_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    ended_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    duration_s: float = 0.0
    start_s: float | None = None
    agent_s: float | None = None
    grade_s: float | None = None
    num_steps: int = 0
    steps: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    model_calls: int | None = None
    call_latencies: list[float] | None = None
    prompt_token_ids: list[list[int]] | None = None
    completion_token_ids: list[list[int]] | None = None
    completion_logprobs: list[list[float]] | None = None
    worker: str | None = None
    first_token_latencies: list[float] | None = None
    reasoning_tokens: int | None = None
    cached_tokens: int | None = None
    columns: str | None = None
    group_size: int | None = None
    policy_version: int | None = None
    sampling: dict[str, Any] | None = None
    logprobs_mode: str | None = None
    tokenizer: str | None = None
    renderer: str | None = None
    chunks: list[dict[str, Any]] | None = None

    def to_row(self) -> dict[str, Any]:
        row = self.__dict__.copy()
        if row["subscores"] is not None:
            row["subscores"] = [{"key": k, "value": v} for k, v in row["subscores"].items()]
        return row

    @property
    def steps_list(self) -> list[dict[str, Any]]:
        return json.loads(self.steps) if self.steps else []


def to_table(records: list[RolloutRecord]) -> pa.Table:
    return pa.Table.from_pylist([r.to_row() for r in records], schema=SCHEMA)


def upgrade_table(table: pa.Table) -> pa.Table:
    """``table`` (a part written under any schema version) in the current schema: columns
    added since are null, the column order is the declared one."""
    if table.schema.equals(SCHEMA, check_metadata=False):
        return table.replace_schema_metadata(SCHEMA.metadata)
    n = table.num_rows
    present = set(table.column_names)
    columns = []
    for f in SCHEMA:
        if f.name in present:
            col = table[f.name]
            columns.append(col if col.type == f.type else col.cast(f.type))
        else:
            columns.append(pa.nulls(n, f.type))
    return pa.Table.from_arrays(columns, schema=SCHEMA)


def build_chunks(prompt_ids: list[list[int]] | None, completion_ids: list[list[int]] | None,
                 logprobs: list[list[float]] | None = None,
                 finish_reasons: list[str | None] | None = None) -> list[dict[str, Any]] | None:
    """Per-call token ids (the engine's own) as typed chunks in training segments.

    Each call's prompt that extends the segment so far (the previous prompt plus its
    completion) adds only its new tokens as an ``env`` chunk; a prompt that does not (the
    template dropped earlier reasoning, a message was re-rendered) starts a new segment
    with that prompt as its ``prompt`` chunk. Logprobs whose length does not match their
    tokens are dropped (null), never padded; a completion whose prompt ids are missing is
    kept but not ``trainable``.
    """
    if not completion_ids:
        return None
    chunks: list[dict[str, Any]] = []
    seq: list[int] = []
    segment = -1
    for turn, completion in enumerate(completion_ids):
        prompt = list((prompt_ids[turn] if prompt_ids and turn < len(prompt_ids) else None)
                      or ())
        known = bool(prompt)  # without its prompt a completion cannot be trained on
        if segment >= 0 and len(prompt) >= len(seq) and prompt[:len(seq)] == seq:
            if len(prompt) > len(seq):
                chunks.append(_chunk(segment, turn, "env", prompt[len(seq):]))
        else:
            segment += 1
            chunks.append(_chunk(segment, turn, "prompt", prompt))
        seq = prompt + list(completion)
        lp = logprobs[turn] if logprobs and turn < len(logprobs) else None
        finish = finish_reasons[turn] if finish_reasons and turn < len(finish_reasons) else None
        chunks.append(_chunk(segment, turn, "model", list(completion),
                             lp if lp is not None and len(lp) == len(completion) else None,
                             trainable=known, finish=finish))
    return chunks


def _chunk(segment: int, turn: int, kind: str, tokens: list[int],
           logprobs: list[float] | None = None, *, trainable: bool = False,
           finish: str | None = None) -> dict[str, Any]:
    return {"segment": segment, "turn": turn, "kind": kind, "tokens": tokens,
            "logprobs": logprobs, "trainable": trainable, "reward": None, "advantage": None,
            "finish_reason": finish}


assert tuple(RolloutRecord.model_fields) == COLUMNS, "record fields and Arrow columns drifted"
