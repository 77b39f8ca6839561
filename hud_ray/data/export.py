"""Write a run (or runs) as training files: Parquet, JSON lines, an HF dataset, Tinker
datums, slime rollout files, or SFT chat rows."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa

from hud_ray.data.policy import GroupPolicy
from hud_ray.data.readers import Group, dataset, groups
from hud_ray.errors import ConfigError, RecordError

Format = Literal["parquet", "jsonl", "hf", "tinker", "slime", "sft"]
FORMATS: tuple[str, ...] = ("parquet", "jsonl", "hf", "tinker", "slime", "sft")


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _rows_table(found: list[Group]) -> pa.Table:
    if not found:
        raise RecordError("no complete groups to export (is the run still going, or did "
                          "every group fail?)")
    return pa.concat_tables([g.rows for g in found])


def export(source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
           out: str | os.PathLike[str], *, fmt: Format,
           policy: GroupPolicy | dict[str, Any] | str | None = None, all_rows: bool = False,
           kept_only: bool = True, loss_fn: str = "importance_sampling",
           rollout_id: int = 0) -> dict[str, Any]:
    """Export ``source`` to ``out``; returns what was written (path and counts).

    Table formats (``parquet``, ``jsonl``, ``hf``) hold the final rows of complete groups
    with their advantage columns (``all_rows``: every row as written, no groups).
    ``tinker`` writes datums as JSON lines, ``slime`` one ``--load-debug-rollout-data``
    file, ``sft`` chat rows as JSON lines; these use kept groups only."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; one of {', '.join(FORMATS)}")
    target = Path(out)
    if fmt in ("parquet", "jsonl", "hf") and all_rows:
        table = dataset(source).to_table()
        found: list[Group] = []
    else:
        found = [g for g in groups(source, policy=policy)
                 if g.kept or not (kept_only and fmt in ("tinker", "slime", "sft"))]
        table = None
    target.parent.mkdir(parents=True, exist_ok=True)
    info: dict[str, Any] = {"format": fmt, "out": str(target), "groups": len(found)}
    if fmt in ("parquet", "jsonl", "hf"):
        table = table if table is not None else _rows_table(found)
        info["rows"] = table.num_rows
        if fmt == "parquet":
            import pyarrow.parquet as pq

            pq.write_table(table, target)
        elif fmt == "jsonl":
            with target.open("w") as fh:
                for batch in table.to_batches():
                    for row in batch.to_pylist():
                        fh.write(json.dumps(row, default=_json_default) + "\n")
        else:
            try:
                import datasets
            except ImportError:
                raise ConfigError("--format hf needs the datasets package: "
                                  "pip install datasets") from None
            datasets.Dataset(table).save_to_disk(str(target))
    elif fmt == "tinker":
        from hud_ray.adapters.tinker import tinker_datums

        datums = tinker_datums(found, loss_fn=loss_fn)  # type: ignore[arg-type]
        with target.open("w") as fh:
            for d in datums:
                fh.write(json.dumps(d.to_json()) + "\n")
        info["datums"] = len(datums)
    elif fmt == "slime":
        from hud_ray.adapters.slime import write_debug_rollouts

        info["out"] = str(write_debug_rollouts(found, target, rollout_id=rollout_id))
    else:
        from hud_ray.adapters.sft import sft_rows

        rows = sft_rows(found)
        with target.open("w") as fh:
            for r in rows:
                fh.write(json.dumps(r, default=_json_default) + "\n")
        info["rows"] = len(rows)
    return info
