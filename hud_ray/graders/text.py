"""Text comparison helpers; each returns a float in [0, 1]."""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable
from typing import Any

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_NUMBER = re.compile(r"[-+]?(?:\d+(?:[.,]\d+)*(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?")


def _text(answer: Any) -> str:
    if answer is None:
        return ""
    content = getattr(answer, "content", answer)
    return content if isinstance(content, str) else str(content)


def normalize(text: str) -> str:
    """Lowercase, drop punctuation and English articles, collapse whitespace."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in string.punctuation)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(answer: Any, expected: Any, *, normalize_text: bool = True) -> float:
    a, b = _text(answer), _text(expected)
    if normalize_text:
        a, b = normalize(a), normalize(b)
    else:
        a, b = a.strip(), b.strip()
    return 1.0 if a == b else 0.0


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
    """The first number in ``text`` (commas as thousands separators), or ``None``."""
    match = _NUMBER.search(text)
    if not match:
        return None
    try:
        return float(match.group().replace(",", ""))
    except ValueError:
        return None


def numeric_match(answer: Any, expected: float | int | str, *, tolerance: float = 0.0) -> float:
    got = first_number(_text(answer))
    want = float(expected) if not isinstance(expected, str) else first_number(expected)
    if got is None or want is None:
        return 0.0
    return 1.0 if abs(got - want) <= tolerance else 0.0


def f1_score(answer: Any, reference: Any) -> float:
    """Token-level F1 between normalized answer and reference (SQuAD style)."""
    pred = normalize(_text(answer)).split()
    ref = normalize(_text(reference)).split()
    if not pred and not ref:
        return 1.0
    common = Counter(pred) & Counter(ref)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(pred), overlap / len(ref)
    return 2 * precision * recall / (precision + recall)
