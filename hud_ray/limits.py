"""Rate limits for model providers: requests/min and tokens/min token buckets.

:class:`RateLimiter` is the bucket itself (plain asyncio). Across a cluster one bucket
per provider+model and run lives in a Ray actor (``actors/limiter.py``); harnesses reach
it through a client that leases permits in small batches, so a busy harness makes one
actor call per batch instead of one per model call.

Tokens are charged in two steps: an estimate when a call is admitted (in full, even when
it is larger than the burst: the bucket goes into debt and later calls wait it off), and
the difference to the real usage once the response reports it (:meth:`RateLimiter.record`).
Over any window of ``T`` seconds the tokens charged stay within ``rate * T + burst`` plus
the overshoot of the one call admitted last; tokens used can exceed that by what calls
still in flight used beyond their estimates, until they report it.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from typing import Any, Protocol

from hud_ray.errors import ConfigError


class Limiter(Protocol):
    async def acquire(self, tokens: int = 0) -> None: ...

    def record(self, estimated: int, actual: int) -> None: ...


@dataclass(frozen=True)
class LimitSettings:
    """The rate-limit agent settings: ``rpm``, ``tpm``, ``burst``, ``token_burst``,
    ``limiter_lease`` (request permits a harness leases per actor call)."""

    rpm: float | None = None
    tpm: float | None = None
    burst: float | None = None
    token_burst: float | None = None
    lease: int = 1

    @classmethod
    def parse(cls, extras: dict[str, Any]) -> LimitSettings | None:
        """The settings in an agent config, or None without rpm/tpm; bad values: ConfigError."""
        def number(key: str) -> float | None:
            value = extras.get(key)
            if value is None:
                return None
            try:
                out = float(value)
            except (TypeError, ValueError):
                out = math.nan
            if isinstance(value, bool) or not math.isfinite(out) or out <= 0:
                raise ConfigError(f"agent setting {key}={value!r}: expected a positive number")
            return out

        rpm, tpm = number("rpm"), number("tpm")
        if rpm is None and tpm is None:
            return None
        lease = number("limiter_lease")
        return cls(rpm=rpm, tpm=tpm, burst=number("burst"), token_burst=number("token_burst"),
                   lease=int(lease) if lease is not None else max(1, int(rpm or 60) // 600))


class _Bucket:
    def __init__(self, per_minute: float, burst: float) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, burst)
        self.level = self.capacity
        self.stamp = time.monotonic()

    def refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait_for(self, amount: float) -> float:
        """Seconds until ``amount`` may be taken (a full bucket admits any amount)."""
        self.refill()
        need = min(amount, self.capacity)
        if self.level >= need:
            return 0.0
        return (need - self.level) / self.rate

    def charge(self, amount: float) -> None:
        """Take ``amount`` now (negative gives back); the level may go below zero (debt)."""
        self.refill()
        self.level = min(self.capacity, self.level - amount)


class RateLimiter:
    """Requests/min and tokens/min buckets; ``acquire`` waits until both allow a call.

    ``burst`` is how many requests may go at once after an idle spell (default: one
    second's worth, at least 1); ``token_burst`` the same for tokens. Waiters are served
    in arrival order.
    """

    def __init__(self, rpm: float | None = None, tpm: float | None = None, *,
                 burst: float | None = None, token_burst: float | None = None) -> None:
        if (rpm is not None and rpm <= 0) or (tpm is not None and tpm <= 0):
            raise ValueError("rpm and tpm must be positive")
        if (burst is not None and burst <= 0) or (token_burst is not None and token_burst <= 0):
            raise ValueError("burst and token_burst must be positive")
        self.requests = _Bucket(rpm, burst if burst is not None else rpm / 60) if rpm else None
        self.tokens = _Bucket(tpm, token_burst if token_burst is not None else tpm / 60) \
            if tpm else None
        self._lock = asyncio.Lock()
        self.granted = 0
        self.tokens_charged = 0.0

    async def acquire(self, tokens: int = 0, permits: int = 1) -> None:
        """Wait until ``permits`` requests and ``tokens`` tokens may go, then charge both."""
        async with self._lock:  # FIFO: one waiter at a time takes from the bucket
            while True:
                wait = 0.0
                if self.requests is not None and permits:
                    wait = max(wait, self.requests.wait_for(permits))
                if self.tokens is not None and tokens:
                    wait = max(wait, self.tokens.wait_for(tokens))
                if wait <= 0:
                    break
                await asyncio.sleep(wait)
            if self.requests is not None and permits:
                self.requests.charge(permits)
            self.charge(tokens)
            self.granted += permits

    def charge(self, tokens: float) -> None:
        """Charge ``tokens`` without waiting (negative refunds); debt delays later calls."""
        if self.tokens is not None and tokens:
            self.tokens.charge(tokens)
            self.tokens_charged += tokens

    def record(self, estimated: int, actual: int) -> None:
        """Reconcile a call admitted with ``estimated`` tokens that used ``actual``.

        An ``actual`` of 0 means the provider reported no usage: the estimate stands.
        """
        if actual > 0:
            self.charge(actual - estimated)
