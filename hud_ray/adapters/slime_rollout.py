"""A slime custom rollout function that trains on a hud-ray run as it is written.

    --rollout-function-path hud_ray.adapters.slime_rollout.generate_rollout

The run directory comes from ``HUD_RAY_SLIME_RUN`` (start the eval separately, e.g.
``hud-ray eval ... --out DIR``). Each call returns the next ``args.rollout_batch_size``
complete groups (kept by the run's group policy), waiting for them as the eval writes
them; rewards are hud-ray's advantages, so pass ``--disable-rewards-normalization``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from hud_ray.adapters.slime import slime_groups, to_slime_samples
from hud_ray.errors import ConfigError

_state: dict[str, Any] = {}


def _groups() -> Iterator[Any]:
    from hud_ray.data import follow
    from hud_ray.settings import Settings

    run = Settings.from_env().get("HUD_RAY_SLIME_RUN")
    if not run:
        raise ConfigError("set HUD_RAY_SLIME_RUN to the hud-ray run directory to train on")
    if _state.get("run") != run:
        _state.update(run=run, it=follow(run, kept_only=True), groups=0, index=0, rollouts=0)
    it: Iterator[Any] = _state["it"]
    return it


def generate_rollout(args: Any, rollout_id: int, data_source: Any = None,
                     evaluation: bool = False) -> Any:
    """slime's rollout-function signature: the next batch of groups as ``Sample`` lists."""
    if evaluation:
        raise ConfigError("hud_ray.adapters.slime_rollout serves training rollouts only")
    it = _groups()
    want = int(getattr(args, "rollout_batch_size", 1))
    batch = []
    for group in it:
        batch.append(group)
        if len(batch) >= want:
            break
    groups = slime_groups(batch, start_group=_state["groups"], start_index=_state["index"],
                          start_rollout=_state["rollouts"])
    _state["groups"] += len(groups)
    _state["index"] += sum(len(e) if isinstance(e, list) else 1 for g in groups for e in g)
    _state["rollouts"] += sum(len(g) for g in groups)
    return to_slime_samples(groups)
