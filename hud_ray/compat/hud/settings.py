"""``hud.settings`` as hud-ray provides it: the fields task files read, from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


def _flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in ("1", "true", "yes", "on")


def _hud_ray_gateway_url() -> str:
    from hud_ray.settings import Settings

    return Settings.from_env().get("HUD_RAY_GATEWAY_URL") or "https://inference.hud.ai"


@dataclass
class Settings:
    """A read-only view of the HUD settings hud-ray honours (others keep HUD's defaults)."""

    api_key: str | None = field(default_factory=lambda: os.environ.get("HUD_API_KEY"))
    hud_gateway_url: str = field(default_factory=lambda: os.environ.get(
        "HUD_GATEWAY_URL", _hud_ray_gateway_url()))
    anthropic_api_key: str | None = field(
        default_factory=lambda: os.environ.get("ANTHROPIC_API_KEY"))
    openai_api_key: str | None = field(default_factory=lambda: os.environ.get("OPENAI_API_KEY"))
    telemetry_enabled: bool = field(default_factory=lambda: _flag("HUD_TELEMETRY_ENABLED",
                                                                  False))
    file_tracking_enabled: bool = field(
        default_factory=lambda: _flag("HUD_FILE_TRACKING_ENABLED", False))

    def __repr__(self) -> str:
        return "Settings(<hud-ray shim; keys hidden>)"


settings = Settings()

__all__ = ["Settings", "settings"]
