"""Capability clients by protocol family, imported lazily."""

from __future__ import annotations

import importlib

from hud_ray.capabilities.base import Capability, CapabilityClient
from hud_ray.errors import CapabilityError

CLIENTS: dict[str, tuple[str, str]] = {
    "ssh": ("hud_ray.capabilities.ssh_client:SSHClient", "ssh"),
    "mcp": ("hud_ray.capabilities.mcp_client:MCPClient", "mcp"),
    "cdp": ("hud_ray.capabilities.cdp_client:CDPClient", "browser"),
}


def client_for(capability: Capability) -> type[CapabilityClient]:
    try:
        target, extra = CLIENTS[capability.family]
    except KeyError:
        raise CapabilityError(f"no client for protocol {capability.protocol!r}",
                              retryable=False) from None
    module, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except ImportError as exc:
        raise CapabilityError(f"{capability.protocol} needs {exc.name}: pip install "
                              f"'hud-ray[{extra}]'", retryable=False) from None


async def connect(capability: Capability) -> CapabilityClient:
    """Dial ``capability`` with the client registered for its protocol."""
    return await client_for(capability).connect(capability)
