"""``hud.environment.env`` as hud-ray provides it."""

from hud_ray.env import Answer, Environment, current_session

__all__ = ["Answer", "Environment", "current_session"]
