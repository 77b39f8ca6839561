"""Graders: text comparison helpers, weighted combination, and ``BashGrader``."""

from hud_ray.graders.bash import BashGrader
from hud_ray.graders.combine import combine, combine_all, combine_any, weighted
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

__all__ = [
    "BashGrader",
    "EvaluationResult",
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
