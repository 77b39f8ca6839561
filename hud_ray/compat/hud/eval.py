"""``hud.eval`` as hud-ray provides it: task rows and tasksets."""

from typing import Any

from hud_ray.compat import unsupported
from hud_ray.task import Task, Taskset


def __getattr__(name: str) -> Any:
    raise unsupported("hud.eval", name)


__all__ = ["Task", "Taskset"]
