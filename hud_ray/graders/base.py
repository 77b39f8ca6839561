"""``Grader``: the async base class for reusable graders (HUD's contract)."""

from __future__ import annotations

from typing import Any

from hud_ray.graders.results import SubScore
from hud_ray.types import jsonable


class Grader:
    """Subclass and implement ``compute_score``; call ``grade(weight, ...)`` to use it.

    ``compute_score(**kwargs)`` returns a :class:`SubScore`, a ``(score, info)`` tuple,
    or a number. ``grade`` applies ``name``/``weight`` and records the parameters in
    ``info["_parameters"]``.
    """

    name: str = "BaseGrader"

    @classmethod
    async def grade(cls, weight: float = 1.0, name: str | None = None,
                    **kwargs: Any) -> SubScore:
        result: Any = await cls.compute_score(**kwargs)
        if isinstance(result, tuple):
            score, info = result
            result = SubScore(name=cls.name, value=float(score), info=info)
        elif not isinstance(result, SubScore):
            result = SubScore(name=cls.name, value=float(result))
        return result.model_copy(update={
            "name": name or cls.name, "weight": weight,
            "info": {**(result.info or {}), "_parameters": jsonable(kwargs)}})

    @classmethod
    async def compute_score(cls, **kwargs: Any) -> Any:
        """Compute a score in [0, 1]; subclasses implement this."""
        raise NotImplementedError(f"{cls.__name__} must implement compute_score")
