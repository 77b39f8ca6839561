"""The training-data section: bytes the token columns add per row, and conversion speed
from a run directory to Tinker datums and slime samples."""

from __future__ import annotations

import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

TURNS, PROMPT, COMPLETION, ENV = 3, 200, 50, 30  # tokens per rollout: 3-turn tool use


def _rollout(rng: random.Random) -> tuple[list[list[int]], list[list[int]], list[list[float]]]:
    """Per-call engine ids: each prompt extends the previous prompt + completion."""
    prompts, completions, logprobs = [], [], []
    seq = [rng.randrange(50_000) for _ in range(PROMPT)]
    for _ in range(TURNS):
        out = [rng.randrange(50_000) for _ in range(COMPLETION)]
        prompts.append(list(seq))
        completions.append(out)
        logprobs.append([-rng.random() for _ in out])
        seq = seq + out + [rng.randrange(50_000) for _ in range(ENV)]
    return prompts, completions, logprobs


def _write(directory: Path, rows: int, group: int, *, chunks: bool) -> int:
    from hud_ray.records import RolloutRecord, build_chunks
    from hud_ray.sink import ArrowSink

    rng = random.Random(0)
    sink = ArrowSink(directory, flush_rows=2000)
    sink.open({"run_id": "r", "config": {"group_size": group}})
    batch = []
    for i in range(rows):
        p, c, lp = _rollout(rng)
        record = RolloutRecord(
            run_id="r", trace_id=f"{i:032x}", rollout_key=f"k{i // group}#{i % group}",
            slug=f"k{i // group}", env="bench", template_id="t", args="{}",
            group_id=f"g{i // group:015d}", sample_index=i % group, attempt=0, final=True,
            agent="openai_compatible", status="ok", reward=float(rng.random() < 0.5),
            reward_valid=True, prompt_token_ids=p, completion_token_ids=c,
            completion_logprobs=lp, group_size=group,
            chunks=build_chunks(p, c, lp) if chunks else None)
        batch.append(record.to_row())
        if len(batch) == 500:
            sink.write_rows(batch)
            batch = []
    sink.write_rows(batch)
    sink.close()
    return sink.bytes_written


def training(*, rows: int = 4000, group: int = 8) -> dict[str, Any]:
    """Bytes per row the ``chunks`` column adds (3-turn rollouts, 410 tokens), and rows/s
    from a run directory to Tinker datums (groups + advantages included) and slime."""
    from hud_ray.adapters import slime_groups, tinker_datums
    from hud_ray.data import groups

    tmp = Path(tempfile.mkdtemp(prefix="hud-ray-train-"))
    try:
        with_chunks = _write(tmp / "with", rows, group, chunks=True)
        without = _write(tmp / "without", rows, group, chunks=False)
        t0 = time.perf_counter()
        found = list(groups(tmp / "with"))
        group_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        datums = tinker_datums(found)
        tinker_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        samples = slime_groups(found)
        slime_s = time.perf_counter() - t0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    assert len(found) == rows // group and len(datums) == rows and len(samples) == len(found)
    return {"rows": rows, "tokens_per_row": PROMPT + TURNS * COMPLETION + (TURNS - 1) * ENV,
            "bytes_per_row_with_chunks": round(with_chunks / rows, 1),
            "bytes_per_row_without_chunks": round(without / rows, 1),
            "added_bytes_per_row": round((with_chunks - without) / rows, 1),
            "groups_rows_per_s": round(rows / group_s),
            "tinker_rows_per_s": round(rows / tinker_s),
            "tinker_end_to_end_rows_per_s": round(rows / (group_s + tinker_s)),
            "slime_rows_per_s": round(rows / slime_s)}
