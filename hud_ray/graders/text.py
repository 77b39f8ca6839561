"""Text comparison helpers; each returns a float in [0, 1].

They score exactly as HUD's: punctuation becomes a space (so ``1,234`` normalises to
``1 234``), and ``numeric_match`` reads the first plain number (``1,234`` reads as 1).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.IGNORECASE)
_SPACES = re.compile(r"\s+")
_PUNCT = re.compile(r"[^\w\s]")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def normalize(text: Any) -> str:
    """Lowercase; punctuation and English articles become spaces; collapse whitespace."""
    s = _PUNCT.sub(" ", _text(text).lower())
    s = _ARTICLES.sub(" ", s)
    return _SPACES.sub(" ", s).strip()


def exact_match(answer: Any, expected: str, *, normalize_text: bool = True) -> float:
    """1.0 if equal after :func:`normalize` (or, without it, after strip and lowercase)."""
    if normalize_text:
        return 1.0 if normalize(answer) == normalize(expected) else 0.0
    return 1.0 if _text(answer).strip().lower() == expected.strip().lower() else 0.0


def contains(answer: Any, substring: str, *, case_sensitive: bool = False) -> float:
    a = _text(answer)
    if not case_sensitive:
        a, substring = a.lower(), substring.lower()
    return 1.0 if substring in a else 0.0


def contains_any(answer: Any, substrings: Iterable[str], *, case_sensitive: bool = False) -> float:
    return 1.0 if any(contains(answer, s, case_sensitive=case_sensitive) for s in substrings) \
        else 0.0


def contains_all(answer: Any, substrings: Iterable[str], *, case_sensitive: bool = False) -> float:
    return 1.0 if all(contains(answer, s, case_sensitive=case_sensitive) for s in substrings) \
        else 0.0


def first_number(text: str) -> float | None:
    """The first plain number in ``text`` (no thousands separators), or ``None``."""
    match = _NUMBER.search(text)
    return float(match.group()) if match else None


def numeric_match(answer: Any, expected: float, *, tolerance: float = 0.0) -> float:
    """1.0 if the answer's first number is within ``tolerance`` of ``expected``."""
    got = first_number(_text(answer))
    if got is None:
        return 0.0
    return 1.0 if abs(got - float(expected)) <= tolerance else 0.0


def f1_score(answer: Any, reference: str) -> float:
    """Token-level F1 between normalised answer and reference (0.0 if either is empty)."""
    pred = normalize(answer).split()
    ref = normalize(reference).split()
    if not pred or not ref:
        return 0.0
    overlap = sum((Counter(pred) & Counter(ref)).values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(pred), overlap / len(ref)
    return 2 * precision * recall / (precision + recall)
