"""``LLMJudgeGrader``: grade an answer against weighted criteria with an LLM judge.

Each criterion is judged ``MET``/``UNMET`` in its own chat-completions call (all in
parallel); verdicts combine by weight into one value in [0, 1], as HUD's does.

Endpoint, first match wins: ``base_url=`` (key from ``api_key_env=``, else
``HUD_RAY_JUDGE_API_KEY``, else ``"EMPTY"``); ``HUD_RAY_JUDGE_BASE_URL``; the gateway
(``HUD_RAY_GATEWAY_KEY`` or ``HUD_API_KEY``, at ``HUD_RAY_GATEWAY_URL``).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from dataclasses import dataclass
from typing import Any

from hud_ray.errors import ConfigError, GradeError
from hud_ray.graders.base import Grader
from hud_ray.graders.results import SubScore

DEFAULT_JUDGE_MODEL = "claude-sonnet-5-5"  # HUD 0.6.21's default

# "MET" alone is met; "UNMET", "UN-MET", "NOT MET" are not.
_VERDICT = re.compile(r"\b(UN[_-]?|(?i:not)[\s_-]+)?MET\b")

_INSTRUCTIONS = (
    "Decide whether the thing one criterion describes is present in a response.\n"
    "<criterion_type> is 'positive' (something wanted) or 'negative' (a mistake). Either "
    "way answer MET when the described thing is present in the response, UNMET when it "
    "is not. Judge facts strictly and wording loosely; mind negations and conditions.\n"
    'Reply with raw JSON only: {"criterion_status": "MET" or "UNMET", '
    '"explanation": "one sentence"}')


@dataclass(frozen=True, slots=True)
class _Criterion:
    text: str
    weight: float


class LLMJudgeGrader(Grader):
    """``await LLMJudgeGrader.grade(weight, answer=..., criteria=[...], question=...)``.

    ``criteria`` items are strings (weight 1) or ``(text, weight)``; a negative weight
    marks a mistake to penalise.
    """

    name = "LLMJudgeGrader"

    @classmethod
    async def compute_score(cls, answer: Any = "",
                            criteria: list[str | tuple[str, float]] | None = None,
                            question: str = "", model: str = DEFAULT_JUDGE_MODEL,
                            base_url: str | None = None, api_key_env: str | None = None,
                            **_: Any) -> SubScore:
        parsed = [_Criterion(str(c[0]), float(c[1])) if isinstance(c, tuple)
                  else _Criterion(str(c), 1.0) for c in criteria or []]
        if not parsed:
            return SubScore(name=cls.name, value=0.0, info={"error": "no criteria provided"})
        from openai import AsyncOpenAI

        url, key = _endpoint(base_url, api_key_env)
        client = AsyncOpenAI(base_url=url, api_key=key, max_retries=2)
        text = str(answer)

        async def judge(c: _Criterion) -> SubScore:
            kind = "negative" if c.weight < 0 else "positive"
            query = f"<query>\n{question}\n</query>\n\n" if question else ""
            user = (f"<criterion_type>\n{kind}\n</criterion_type>\n\n<criterion>\n{c.text}\n"
                    f"</criterion>\n\n{query}<response>\n{text}\n</response>")
            try:
                reply = await client.chat.completions.create(
                    model=model, max_tokens=1024,
                    messages=[{"role": "system", "content": _INSTRUCTIONS},
                              {"role": "user", "content": user}])
            except Exception as exc:
                raise GradeError(f"LLMJudgeGrader: judge call failed: {type(exc).__name__}: "
                                 f"{exc}"[:300], code="judge_failed", retryable=True) from None
            met, reason = parse_verdict(reply.choices[0].message.content or "")
            return SubScore(name=c.text, value=1.0 if met else 0.0, weight=c.weight,
                            info={"reason": reason})

        try:
            verdicts = list(await asyncio.gather(*(judge(c) for c in parsed)))
        finally:
            await client.close()
        return SubScore(name=cls.name, value=rubric_value(verdicts), children=verdicts,
                        info={"model": model})


def _endpoint(base_url: str | None, api_key_env: str | None) -> tuple[str, str]:
    from hud_ray.gateway import DEFAULT_GATEWAY_URL
    from hud_ray.settings import Settings

    settings = Settings.from_env()
    url = base_url or settings.get("HUD_RAY_JUDGE_BASE_URL")
    if url:
        named = os.environ.get(api_key_env) if api_key_env else None
        return url, named or settings.get("HUD_RAY_JUDGE_API_KEY") or "EMPTY"
    if gateway := settings.gateway_key():
        return settings.get("HUD_RAY_GATEWAY_URL") or DEFAULT_GATEWAY_URL, gateway[0]
    raise ConfigError("LLMJudgeGrader has no endpoint: pass base_url=, set "
                      "HUD_RAY_JUDGE_BASE_URL, or HUD_RAY_GATEWAY_KEY / HUD_API_KEY")


def parse_verdict(content: str) -> tuple[bool, str]:
    """``(met, explanation)`` from a judge reply (JSON, else a bare MET/UNMET word)."""
    text = content.strip().removeprefix("```json").removeprefix("```").removesuffix("```")
    text = text.strip()
    start, end = text.find("{"), text.rfind("}")
    if start != -1 and end > start:
        try:
            data = json.loads(text[start:end + 1])
        except ValueError:
            data = None
        if isinstance(data, dict):
            status = str(data.get("criterion_status")).upper()
            if status not in ("MET", "UNMET"):
                raise GradeError(f"LLMJudgeGrader: judge reply has no MET/UNMET status: "
                                 f"{text[:200]!r}", code="judge_failed")
            return status == "MET", str(data.get("explanation", ""))
    found = _VERDICT.findall(text)
    if not found:
        raise GradeError(f"LLMJudgeGrader: judge reply has no MET/UNMET verdict: "
                         f"{text[:200]!r}", code="judge_failed")
    return not any(found), text[:200]


def rubric_value(verdicts: list[SubScore]) -> float:
    """Weighted verdicts in [0, 1]: met positives over their total, less met negatives."""
    positive = sum(max(0.0, v.weight) for v in verdicts)
    negative = sum(-v.weight for v in verdicts if v.weight < 0)
    total = sum(v.value * v.weight for v in verdicts)
    if positive > 0:
        return max(0.0, min(1.0, total / positive))
    if negative > 0:
        return max(0.0, min(1.0, 1.0 + total / negative))
    return 0.0
