"""``hud.graders`` as hud-ray provides it (same names, same scores)."""

from hud_ray.graders import (
    BashGrader,
    EvaluationResult,
    Grader,
    LLMJudgeGrader,
    SubScore,
    _combine_subscores,
    combine,
    combine_all,
    combine_any,
    contains,
    contains_all,
    contains_any,
    exact_match,
    f1_score,
    normalize,
    numeric_match,
)

__all__ = ["BashGrader", "EvaluationResult", "Grader", "LLMJudgeGrader", "SubScore",
           "_combine_subscores", "combine", "combine_all", "combine_any", "contains",
           "contains_all", "contains_any", "exact_match", "f1_score", "normalize",
           "numeric_match"]
