"""Rate limits for model providers: requests/min and tokens/min token buckets.

:class:`RateLimiter` is the bucket itself (plain asyncio). Across a cluster one bucket
per provider+model lives in a Ray actor (``actors/limiter.py``); harnesses reach it
through a client that leases permits in small batches, so a busy harness makes one
actor call per batch instead of one per model call. The cost of batching is a little
burstiness: a harness may hold up to ``lease_size`` unused permits, so the configured
``burst`` is the bound on how far a window can exceed the rate.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Limiter(Protocol):
    async def acquire(self, tokens: int = 0) -> None: ...


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
        self.refill()
        if self.level >= amount:
            return 0.0
        return (amount - self.level) / self.rate


class RateLimiter:
    """Requests/min and tokens/min buckets; ``acquire`` waits until both allow a call.

    ``burst`` is how many requests may go at once after an idle spell (default: one
    second's worth, at least 1). Waiters are served in arrival order.
    """

    def __init__(self, rpm: float | None = None, tpm: float | None = None, *,
                 burst: float | None = None) -> None:
        if (rpm is not None and rpm <= 0) or (tpm is not None and tpm <= 0):
            raise ValueError("rpm and tpm must be positive")
        self.requests = _Bucket(rpm, burst if burst is not None else rpm / 60) if rpm else None
        self.tokens = _Bucket(tpm, max(tpm / 60, 1.0)) if tpm else None
        self._lock = asyncio.Lock()
        self.granted = 0

    async def acquire(self, tokens: int = 0, permits: int = 1) -> None:
        async with self._lock:  # FIFO: one waiter at a time takes from the bucket
            while True:
                wait = 0.0
                if self.requests is not None:
                    wait = max(wait, self.requests.wait_for(permits))
                if self.tokens is not None and tokens:
                    wait = max(wait, self.tokens.wait_for(min(tokens, self.tokens.capacity)))
                if wait <= 0:
                    break
                await asyncio.sleep(wait)
            if self.requests is not None:
                self.requests.level -= permits
            if self.tokens is not None and tokens:
                self.tokens.level -= min(tokens, self.tokens.capacity)
            self.granted += permits

    def record(self, estimated: int, actual: int) -> None:
        """Correct the token bucket once a call's real usage is known."""
        if self.tokens is not None:
            self.tokens.refill()
            self.tokens.level = min(self.tokens.capacity,
                                    self.tokens.level + estimated - actual)
