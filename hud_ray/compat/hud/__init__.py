"""hud-ray's stand-in for the ``hud`` package (see :mod:`hud_ray.compat`)."""

from typing import Any

from hud_ray.capabilities.base import Capability
from hud_ray.compat import unsupported
from hud_ray.env import Environment
from hud_ray.task import Task, Taskset

__version__ = "0.6.21+hud-ray-shim"


def __getattr__(name: str) -> Any:
    raise unsupported("hud", name)


__all__ = ["Capability", "Environment", "Task", "Taskset", "__version__"]
