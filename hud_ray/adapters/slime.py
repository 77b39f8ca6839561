"""slime ``Sample`` dicts from rollouts, group by group, in order.

Each training segment of a row becomes one sample: ``tokens`` = prompt + response (the
segment's tokens), ``response_length`` = tokens after the prompt (everything from the
first model chunk on), ``loss_mask`` and ``rollout_log_probs`` over the response only
(0 and 0.0 on tool/env tokens), ``status`` mapped from the row, ``group_index`` dense
per group, ``index`` unique per sample, ``rollout_id`` shared by a rollout's segments,
and the true reward in ``metadata["raw_reward"]``.

slime groups samples by position (``n_samples_per_prompt`` consecutive samples) and
normalises rewards per group. So every group is emitted complete and in order:
a member that does not train (failed, or dropped by the group policy) becomes a
masked placeholder (``remove_sample=True``, ``loss_mask`` all 0). With
``reward="advantage"`` (the default) the sample's ``reward`` is hud-ray's precomputed
advantage: run slime with ``--disable-rewards-normalization --advantage-estimator grpo``
so that scalar reaches the loss unchanged (the numbers then match the Tinker path).
``reward="raw"`` passes the true reward and leaves normalisation to slime.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from hud_ray.adapters._segments import pylist, table_segments
from hud_ray.errors import ConfigError

#: hud-ray status -> slime ``Sample.Status`` value
STATUS = {"ok": "completed", "timeout": "truncated", "cancelled": "aborted",
          "agent_error": "failed", "infra_error": "failed", "grader_error": "failed"}


def _status(row: dict[str, Any]) -> str:
    if row["status"] == "ok" and row.get("stop_reason") in ("length", "max_steps"):
        return "truncated"
    return STATUS.get(row["status"], "failed")


def _placeholder(row: dict[str, Any], group_index: int, index: int, rollout_id: int,
                 reward: float) -> dict[str, Any]:
    return _sample(group_index, index, rollout_id, row.get("prompt") or "", [0, 0], 1, [0],
                   [0.0], reward, True, "aborted" if row["status"] == "ok" else _status(row),
                   _metadata(row, 0), row)


def _metadata(row: dict[str, Any], segment: int) -> dict[str, Any]:
    return {"trace_id": row["trace_id"], "group_id": row["group_id"],
            "rollout_key": row.get("rollout_key"), "segment": segment,
            "raw_reward": row.get("reward"), "reward_valid": row.get("reward_valid"),
            "advantage": row.get("advantage"), "stop_reason": row.get("stop_reason"),
            "hud_ray_status": row.get("status")}


def _sample(group_index: int, index: int, rollout_id: int, prompt: str, tokens: list[int],
            response_length: int, loss_mask: list[int], log_probs: list[float],
            reward: float, remove: bool, status: str, metadata: dict[str, Any],
            row: dict[str, Any]) -> dict[str, Any]:
    version = row.get("policy_version")
    return {"group_index": group_index, "index": index, "rollout_id": rollout_id,
            "prompt": prompt, "tokens": tokens, "response": "",
            "response_length": response_length, "label": None, "reward": reward,
            "loss_mask": loss_mask, "rollout_log_probs": log_probs,
            "weight_versions": [str(version)] if version is not None else [],
            "remove_sample": remove, "status": status, "metadata": metadata}


def slime_groups(groups: Iterable[Any], *, reward: Literal["advantage", "raw"] = "advantage",
                 start_group: int = 0, start_index: int = 0, start_rollout: int = 0
                 ) -> list[list[dict[str, Any] | list[dict[str, Any]]]]:
    """One list per complete group, ``group_size`` entries each, in order. An entry is a
    sample dict, or a list of them when its rollout has several segments (all sharing
    ``rollout_id``)."""
    if reward not in ("advantage", "raw"):
        raise ConfigError(f"reward must be 'advantage' or 'raw', not {reward!r}")
    out: list[list[dict[str, Any] | list[dict[str, Any]]]] = []
    gi, index, rid = start_group, start_index, start_rollout
    for group in groups:
        entries: list[dict[str, Any] | list[dict[str, Any]]] = []
        rows = pylist(group.rows, chunks=False)
        segs_of = dict(table_segments(group.rows, include_masked=True))
        for i, row in enumerate(rows):
            trains = bool(row.get("trainable_row")) and row.get("advantage") is not None
            value = (float(row["advantage"] or 0.0) if reward == "advantage"
                     else float(row["reward"] or 0.0))
            if not trains and reward == "advantage":
                value = 0.0
            segs = segs_of[i]
            if not segs:
                entries.append(_placeholder(row, gi, index, rid, value))
                index += 1
                rid += 1
                continue
            samples = []
            for seg in segs:
                p = seg.prompt_len
                mask = [int(m) for m in seg.mask[p:]]
                samples.append(_sample(
                    gi, index, rid, row.get("prompt") or "", seg.tokens.tolist(),
                    len(seg.tokens) - p, mask, seg.logprobs[p:].tolist(), value,
                    not any(mask), _status(row), _metadata(row, seg.segment), row))
                index += 1
            entries.append(samples[0] if len(samples) == 1 else samples)
            rid += 1
        out.append(entries)
        gi += 1
    return out


def flat_samples(groups: list[list[dict[str, Any] | list[dict[str, Any]]]]
                 ) -> list[dict[str, Any]]:
    """The samples of :func:`slime_groups` as one flat list, in order."""
    flat: list[dict[str, Any]] = []
    for entries in groups:
        for e in entries:
            flat.extend(e if isinstance(e, list) else [e])
    return flat


def write_debug_rollouts(groups: Iterable[Any], path: str | os.PathLike[str], *,
                         rollout_id: int = 0, reward: Literal["advantage", "raw"] = "advantage"
                         ) -> Path:
    """Write one rollout file for slime's ``--load-debug-rollout-data`` (a ``torch.save``
    of ``{"rollout_id", "samples": [Sample.to_dict()...]}``); ``path`` may hold
    ``{rollout_id}``. Needs ``torch``."""
    try:
        import torch
    except ImportError:
        raise ConfigError("slime rollout files are torch.save files: pip install torch") \
            from None
    target = Path(str(path).format(rollout_id=rollout_id))
    target.parent.mkdir(parents=True, exist_ok=True)
    samples = flat_samples(slime_groups(groups, reward=reward))
    torch.save({"rollout_id": rollout_id, "samples": samples}, target)
    return target


def to_slime_samples(groups: list[list[dict[str, Any] | list[dict[str, Any]]]]) -> Any:
    """The same structure with ``slime.utils.types.Sample`` objects (needs slime)."""
    try:
        from slime.utils.types import Sample
    except ImportError:
        raise ConfigError("to_slime_samples() needs slime installed") from None
    return [[[Sample.from_dict(s) for s in e] if isinstance(e, list) else Sample.from_dict(e)
             for e in entries] for entries in groups]
