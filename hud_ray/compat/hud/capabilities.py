"""``hud.capabilities`` as hud-ray provides it."""

from typing import Any

from hud_ray.capabilities.base import Capability, CapabilityClient
from hud_ray.compat import unsupported


def __getattr__(name: str) -> Any:
    raise unsupported("hud.capabilities", name)


__all__ = ["Capability", "CapabilityClient"]
