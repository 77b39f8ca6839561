"""A minimal policy-gradient loop fed by a running eval: the training-data contract.

An eval runs in its own process (multi-turn, tool-using rollouts against the local
provider, which returns token ids and logprobs the way vLLM does). This process follows
the run directory, takes each group the moment it completes, turns its rollouts into
Tinker-style datums (token-exact: the engine's own ids, prompt tokens masked, the
group-centred advantage on sampled tokens) and builds a padded, loss-ready batch per
step. It computes the importance-sampling surrogate with the sampler's logprobs
standing in for the learner's (a real trainer runs its model here), so it checks the
contract, not a model.

    python examples/train_while_eval_runs.py --tasks 6 --group-size 4 --batch 8
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from hud_ray.adapters import TinkerDatum, tinker_datums
from hud_ray.data import follow
from hud_ray.testing import FakeProvider, ProviderRequest, Reply, ToolCall, letters_policy

log = logging.getLogger("train_while_eval_runs")
ROOT = Path(__file__).resolve().parent.parent


def policy(req: ProviderRequest) -> Reply:
    """Think twice with the ``think`` tool, then answer; right about half of the time."""
    if req.turn < 2 and "think" in req.tools:
        return Reply(tool_calls=(ToolCall("think", {"thought": f"step {req.turn}"}),))
    answer = letters_policy(req)
    if random.random() < 0.5 and answer.text and answer.text.isdigit():
        return Reply(text=str(int(answer.text) + 1))
    return answer


def run_eval_process(options: dict[str, Any]) -> None:
    from hud_ray.engine import EvalConfig, run_eval

    logging.basicConfig(level=logging.WARNING)
    run_eval(config=EvalConfig(**options))


def batch_of(datums: list[TinkerDatum]) -> dict[str, np.ndarray]:
    """Right-padded ``(B, T)`` arrays; padding has weight 0."""
    width = max(len(d.model_input) for d in datums)
    shape = (len(datums), width)
    out: dict[str, np.ndarray] = {
        "input_tokens": np.zeros(shape, np.int64), "target_tokens": np.zeros(shape, np.int64),
        "logprobs": np.zeros(shape, np.float32), "advantages": np.zeros(shape, np.float32),
        "mask": np.zeros(shape, np.float32)}
    for i, d in enumerate(datums):
        n = len(d.model_input)
        out["input_tokens"][i, :n] = d.model_input
        out["target_tokens"][i, :n] = d.loss_fn_inputs["target_tokens"]
        out["logprobs"][i, :n] = d.loss_fn_inputs["logprobs"]
        out["advantages"][i, :n] = d.loss_fn_inputs["advantages"]
        out["mask"][i, :n] = d.mask
    return out


def surrogate_loss(batch: dict[str, np.ndarray], learner_logprobs: np.ndarray) -> float:
    """Importance-sampling policy-gradient loss: -mean over trained tokens of
    ``exp(learner - sampler) * advantage``."""
    ratio = np.exp(learner_logprobs - batch["logprobs"])
    weight = batch["mask"].sum()
    return float(-(ratio * batch["advantages"] * batch["mask"]).sum() / max(weight, 1.0))


def train(run_dir: Path, batch_size: int) -> list[dict[str, float]]:
    """Follow ``run_dir`` until the eval finishes; one step per ``batch_size`` datums."""
    steps: list[dict[str, float]] = []
    pending: list[TinkerDatum] = []
    for group in follow(run_dir, poll=0.1, idle_timeout=300):
        if not group.kept or group.zero_variance:  # nothing to learn from this group
            continue
        pending.extend(tinker_datums(group))
        while len(pending) >= batch_size:
            step, pending = pending[:batch_size], pending[batch_size:]
            batch = batch_of(step)
            loss = surrogate_loss(batch, learner_logprobs=batch["logprobs"])
            tokens = float(batch["mask"].sum())
            signal = float(np.abs(batch["advantages"]).sum() / max(tokens, 1.0))
            steps.append({"datums": len(step), "tokens": tokens, "loss": loss,
                          "mean_abs_advantage": signal})
            log.warning("step %d: %d datums, %d trained tokens, loss %.4f, mean |A| %.3f",
                        len(steps), len(step), int(tokens), loss, signal)
    return steps


def main(argv: list[str] | None = None) -> list[dict[str, float]]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", type=int, default=6)
    p.add_argument("--group-size", type=int, default=4)
    p.add_argument("--batch", type=int, default=8, help="datums per step")
    p.add_argument("--out", default=None, help="run directory (default: a temp dir)")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    run_dir = Path(a.out or tempfile.mkdtemp(prefix="hud-ray-train-")) / "run"
    from hud_ray.task import Taskset

    slugs = [t.slug for t in Taskset.from_file(ROOT / "tasksets/letters.py")][:a.tasks]
    with FakeProvider(policy) as provider:
        options = {"source": str(ROOT / "tasksets/letters.py"), "agent": "openai_compatible",
                   "base_url": provider.base_url, "model": "fake", "task_ids": slugs,
                   "group_size": a.group_size, "out": str(run_dir), "policy_version": 0,
                   "group_policy": "keep_partial:2", "max_concurrent": 8,
                   "agent_config": {"return_token_ids": True, "think_tool": True,
                                    "temperature": 1.0}}
        eval_process = multiprocessing.get_context("spawn").Process(
            target=run_eval_process, args=(options,))
        eval_process.start()
        try:
            steps = train(run_dir, a.batch)
        finally:
            eval_process.join(timeout=300)
            if eval_process.is_alive():
                eval_process.terminate()
    log.warning("%d steps from %s", len(steps), run_dir)
    return steps


if __name__ == "__main__":
    main()
