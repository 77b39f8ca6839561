"""``hud.environment`` as hud-ray provides it."""

from typing import Any

from hud_ray.capabilities.base import Capability
from hud_ray.compat import unsupported
from hud_ray.env import Answer, Environment


def __getattr__(name: str) -> Any:
    raise unsupported("hud.environment", name)


__all__ = ["Answer", "Capability", "Environment"]
