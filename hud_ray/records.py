"""The rollout record and its Arrow schema, declared once and versioned.

One row per rollout attempt. Failed attempts are rows too: ``status`` says what
happened, ``reward_valid`` whether ``reward`` means anything (a failed rollout has a
null reward, never a disguised 0.0). ``final`` marks the attempt that settles its
rollout key (``slug#sample_index``); a trainer keeps ``final & reward_valid`` rows.

Never reorder or retype a column without bumping :data:`SCHEMA_VERSION`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
from pydantic import BaseModel, Field

from hud_ray.types import Status

SCHEMA_VERSION = "1"

_ids = pa.list_(pa.list_(pa.int32()))

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
        pa.field("subscores", pa.map_(pa.string(), pa.float64())),
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

    def to_row(self) -> dict[str, Any]:
        row = self.__dict__.copy()
        if row["subscores"] is not None:
            row["subscores"] = list(row["subscores"].items())
        return row

    @property
    def steps_list(self) -> list[dict[str, Any]]:
        return json.loads(self.steps) if self.steps else []


def to_table(records: list[RolloutRecord]) -> pa.Table:
    return pa.Table.from_pylist([r.to_row() for r in records], schema=SCHEMA)


assert tuple(RolloutRecord.model_fields) == COLUMNS, "record fields and Arrow columns drifted"
