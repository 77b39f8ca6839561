"""``hud.capabilities`` as hud-ray provides it."""

from typing import Any

from hud_ray.capabilities.base import Capability, CapabilityClient
from hud_ray.compat import unsupported


def __getattr__(name: str) -> Any:
    if name == "MCPClient":  # connect / list_tools / call_tool, as HUD's
        from hud_ray.capabilities.mcp_client import MCPClient

        return MCPClient
    raise unsupported("hud.capabilities", name)


__all__ = ["Capability", "CapabilityClient"]  # and MCPClient, imported on first use
