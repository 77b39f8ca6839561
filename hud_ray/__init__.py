"""hud-ray: HUD-style agent environments and tasksets as graded rollouts on Ray."""

from hud_ray.capabilities.base import Capability
from hud_ray.engine import EvalConfig, EvalResult, run_eval, run_eval_async
from hud_ray.env import Environment, Template, current_session
from hud_ray.errors import HudRayError
from hud_ray.graders.results import EvaluationResult, SubScore
from hud_ray.records import SCHEMA, SCHEMA_VERSION, RolloutRecord
from hud_ray.sink import read_rollouts
from hud_ray.task import Task, Taskset

__version__ = "0.1.0"

__all__ = [
    "SCHEMA",
    "SCHEMA_VERSION",
    "Capability",
    "Environment",
    "EvalConfig",
    "EvalResult",
    "EvaluationResult",
    "HudRayError",
    "RolloutRecord",
    "SubScore",
    "Task",
    "Taskset",
    "Template",
    "__version__",
    "current_session",
    "read_rollouts",
    "run_eval",
    "run_eval_async",
]
