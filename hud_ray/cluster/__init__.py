"""Running on a Ray cluster: Ray Jobs (``hud-ray submit``/``jobs``) and what they ship."""

from hud_ray.cluster.jobs import EvalJob, prepare_eval_job

__all__ = ["EvalJob", "prepare_eval_job"]
