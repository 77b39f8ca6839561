"""The driver: plan, schedule, retry, time out; stream rows to the sink."""

from hud_ray.engine.config import EvalConfig
from hud_ray.engine.driver import Driver, EvalResult, Progress, run_eval, run_eval_async
from hud_ray.engine.plan import RolloutSpec, plan

__all__ = ["Driver", "EvalConfig", "EvalResult", "Progress", "RolloutSpec", "plan", "run_eval",
           "run_eval_async"]
