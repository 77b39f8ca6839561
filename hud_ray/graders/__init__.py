"""Graders, with HUD v6's API: text helpers, weighted ``combine``, ``Grader`` subclasses
(``BashGrader``, ``LLMJudgeGrader``) and the ``SubScore``/``EvaluationResult`` shapes."""

from hud_ray.graders.base import Grader
from hud_ray.graders.bash import BashGrader
from hud_ray.graders.combine import combine, combine_all, combine_any, weighted
from hud_ray.graders.judge import LLMJudgeGrader
from hud_ray.graders.results import EvaluationResult, SubScore
from hud_ray.graders.text import (
    contains,
    contains_all,
    contains_any,
    exact_match,
    f1_score,
    normalize,
    numeric_match,
)

_combine_subscores = weighted  # HUD's name

__all__ = [
    "BashGrader",
    "EvaluationResult",
    "Grader",
    "LLMJudgeGrader",
    "SubScore",
    "combine",
    "combine_all",
    "combine_any",
    "contains",
    "contains_all",
    "contains_any",
    "exact_match",
    "f1_score",
    "normalize",
    "numeric_match",
    "weighted",
]
