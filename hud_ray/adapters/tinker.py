"""Tinker datums from rollouts, built exactly as the Tinker cookbook builds them.

For each training segment ``S`` of a row: ``model_input = S[:-1]``; ``loss_fn_inputs``
holds ``target_tokens`` (int64, ``S[1:]``) and, for the RL losses, ``logprobs`` and
``advantages`` (float32, shifted the same way, zero on non-trainable positions), or
``weights`` (float32 mask, shifted) for ``cross_entropy``. No ``mask`` key is ever put
in ``loss_fn_inputs`` (the service's ``importance_sampling`` accepts only its three
keys, and other compatible servers reject extras): the mask stays on the client, in
:attr:`TinkerDatum.mask`, for sampler/trainer KL metrics.

The ``tinker`` package is optional: :meth:`TinkerDatum.to_tinker` imports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from hud_ray.adapters._segments import segments
from hud_ray.errors import ConfigError, RecordError

LossFn = Literal["cross_entropy", "importance_sampling", "ppo", "cispo"]
LOSS_KEYS: dict[str, tuple[str, ...]] = {
    "cross_entropy": ("target_tokens", "weights"),
    "importance_sampling": ("target_tokens", "logprobs", "advantages"),
    "ppo": ("target_tokens", "logprobs", "advantages"),
    "cispo": ("target_tokens", "logprobs", "advantages"),
}


@dataclass(frozen=True)
class TinkerDatum:
    """One datum: ``model_input`` token ids and the loss inputs as NumPy arrays."""

    model_input: np.ndarray  # int64
    loss_fn_inputs: dict[str, np.ndarray]
    mask: np.ndarray  # client-side only (never sent)
    trace_id: str
    group_id: str
    segment: int

    def to_tinker(self) -> Any:
        """The ``tinker.Datum`` (needs the ``tinker`` package)."""
        try:
            import tinker
        except ImportError:
            raise ConfigError("to_tinker() needs the tinker package: pip install tinker") \
                from None
        return tinker.Datum(
            model_input=tinker.ModelInput.from_ints(self.model_input.tolist()),
            loss_fn_inputs={k: tinker.TensorData.from_numpy(v)
                            for k, v in self.loss_fn_inputs.items()})

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form (``TensorData``-shaped loss inputs)."""
        return {"model_input": self.model_input.tolist(),
                "loss_fn_inputs": {k: {"dtype": str(v.dtype), "shape": list(v.shape),
                                       "data": v.tolist()}
                                   for k, v in self.loss_fn_inputs.items()},
                "trace_id": self.trace_id, "group_id": self.group_id,
                "segment": self.segment}


def tinker_datums(source: Any, *, loss_fn: LossFn = "importance_sampling",
                  include_masked: bool = False) -> list[TinkerDatum]:
    """Datums for every trainable row of ``source`` (a Group, groups, a table with
    advantage columns, or run directories), in order: row by row, segment by segment."""
    if loss_fn not in LOSS_KEYS:
        raise ConfigError(f"unknown Tinker loss {loss_fn!r}; one of {', '.join(LOSS_KEYS)}")
    out: list[TinkerDatum] = []
    for seg in segments(source, include_masked=include_masked):
        if len(seg.tokens) < 2:
            continue
        if loss_fn != "cross_entropy" and seg.missing_logprobs:
            raise RecordError(f"rollout {seg.trace_id}: no sampler logprobs on trainable "
                              f"tokens; {loss_fn} needs them (run with "
                              "return_token_ids, or use cross_entropy)")
        inputs: dict[str, np.ndarray] = {"target_tokens": seg.tokens[1:].copy()}
        if loss_fn == "cross_entropy":
            inputs["weights"] = seg.mask[1:].copy()
        else:
            inputs["logprobs"] = seg.logprobs[1:].copy()
            inputs["advantages"] = seg.advantages[1:].copy()
        out.append(TinkerDatum(model_input=seg.tokens[:-1].copy(), loss_fn_inputs=inputs,
                               mask=seg.mask[1:].copy(), trace_id=seg.trace_id,
                               group_id=seg.group_id, segment=seg.segment))
    return out
