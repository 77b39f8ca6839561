"""The engine's one seam to the Ray placement layer (``actors/``).

Nothing else in ``hud_ray`` imports ``actors``: the driver asks this module for
harness actors, so the layering stays ``engine -> actors -> hud_ray`` logic without
an import cycle.
"""

from __future__ import annotations

from typing import Any


def spawn_harness(*, resources: dict[str, float] | None = None,
                  runtime_env: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    """Start one ``HarnessActor`` (a handle; await ``handle.ready.remote()``)."""
    from actors.harness import HarnessActor
    from hud_ray.placement import ray_options

    options: dict[str, Any] = ray_options(resources)
    if runtime_env:
        options["runtime_env"] = runtime_env
    return HarnessActor.options(**options).remote(**kwargs)  # type: ignore[attr-defined]
