"""``hud.agents`` as hud-ray provides it: only the config types (agents are hud-ray's)."""

from typing import Any

from hud_ray.compat import unsupported


def __getattr__(name: str) -> Any:
    raise unsupported("hud.agents", name)
