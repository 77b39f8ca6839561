"""Retries of provider calls: exponential back-off with full jitter, honouring Retry-After.

Only what the provider (or the way to it) did becomes a :class:`ProviderError`: HTTP
errors from the SDKs, connection errors and timeouts. A :class:`HudRayError` raised on the
way (a lost rate limiter, say) passes through with its own code, and any other exception
keeps its own type, so a bug is not reported as the provider's fault.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from hud_ray.errors import HudRayError, ProviderError, RateLimited, one_line
from hud_ray.gateway import redact

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """How provider calls are retried (429, 5xx, connection errors, timeouts)."""

    max_attempts: int = 6
    base: float = 0.5
    cap: float = 30.0
    max_retry_after: float = 120.0

    def backoff(self, attempt: int) -> float:
        return random.uniform(0, min(self.cap, self.base * 2 ** attempt))


def _status(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    if status is None and type(exc).__module__.startswith("google.genai"):
        status = getattr(exc, "code", None)  # google-genai's APIError
    return status if isinstance(status, int) else None


def _retry_after(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value:
        try:
            return float(value)
        except ValueError:
            return None
    return None


_SDK_MODULES = ("openai", "anthropic", "httpx", "httpcore")


def is_provider_error(exc: BaseException) -> bool:
    """Whether ``exc`` came from a provider call: an SDK or HTTP error, a connection
    error or a timeout (not a HudRayError, not a bug in our own code)."""
    if isinstance(exc, HudRayError):
        return False
    if _status(exc) is not None or isinstance(exc, ConnectionError | TimeoutError):
        return True
    return type(exc).__module__.partition(".")[0] in _SDK_MODULES


def classify(exc: BaseException) -> tuple[bool, bool]:
    """(retryable, rate_limited) for an exception raised by either provider SDK."""
    name = type(exc).__name__
    status = _status(exc)
    if status == 429 or name == "RateLimitError":
        return True, True
    if status is not None:
        return status >= 500 or status in (408, 409), False
    if name in ("APIConnectionError", "APITimeoutError") or isinstance(
            exc, ConnectionError | TimeoutError):
        return True, False
    return False, False


async def call_with_retries[T](fn: Callable[[], Awaitable[T]], policy: RetryPolicy, *,
                            what: str = "model call") -> T:
    """Call ``fn`` until it succeeds or the policy gives up; raise a ProviderError then.

    Exceptions that are not provider errors (see :func:`is_provider_error`) are raised
    as they are, without retries.
    """
    last: BaseException | None = None
    for attempt in range(policy.max_attempts):
        try:
            return await fn()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not is_provider_error(exc):
                raise
            retryable, _limited = classify(exc)
            if not retryable:
                raise _provider_error(exc, what, retryable=False) from None
            last = exc
            if attempt + 1 >= policy.max_attempts:
                break
            wait = _retry_after(exc)
            delay = min(wait, policy.max_retry_after) if wait is not None else \
                policy.backoff(attempt)
            log.info("%s failed (%s); retry %d in %.2fs", what, type(exc).__name__,
                     attempt + 1, delay)
            await asyncio.sleep(delay)
    assert last is not None
    raise _provider_error(last, what, retryable=True) from None


def _provider_error(exc: BaseException, what: str, *, retryable: bool) -> ProviderError:
    """One line: ``<what> failed: <HTTP status | exception type>: <detail>``.

    ``provider_rejected`` (not retryable) is kept for HTTP 4xx answers; retries that
    ran out and SDK errors without a status are ``provider_error`` (retryable).
    """
    status = _status(exc)
    detail = one_line(redact(str(exc)), 500)
    label = f"HTTP {status}" if status else type(exc).__name__
    message = f"{what} failed: {label}: {detail}"
    if status == 429:
        return RateLimited(message, retryable=retryable)
    if not retryable and status is not None and 400 <= status < 500:
        return ProviderError(message, code="provider_rejected", retryable=False)
    return ProviderError(message, code="provider_error", retryable=True)


def jsonable(value: Any) -> Any:
    """Provider SDK objects to plain JSON values (for transcripts)."""
    if hasattr(value, "model_dump"):
        return value.model_dump(exclude_none=True)
    return value
