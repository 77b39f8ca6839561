"""Capabilities: wire data, the server side a sandbox runs, and clients that dial it."""

from hud_ray.capabilities.base import Capability, CapabilityClient, SessionResource

__all__ = ["Capability", "CapabilityClient", "SessionResource"]
