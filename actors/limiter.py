"""One shared rate limiter per provider+model, as a named Ray actor."""

from __future__ import annotations

import asyncio
from typing import Any

import ray

from hud_ray.limits import RateLimiter

NAMESPACE = "hud_ray"


@ray.remote(num_cpus=0, max_concurrency=10_000)
class LimiterActor:
    def __init__(self, rpm: float | None, tpm: float | None, burst: float | None) -> None:
        self.limiter = RateLimiter(rpm, tpm, burst=burst)

    async def lease(self, permits: int, tokens: int) -> int:
        await self.limiter.acquire(tokens, permits)
        return permits

    def granted(self) -> int:
        return self.limiter.granted


def get_or_create_limiter(key: str, rpm: float | None, tpm: float | None,
                          burst: float | None = None) -> Any:
    """The cluster-wide limiter actor for ``key`` (e.g. ``openai_compatible:my-model``)."""
    name = f"limiter:{key}:rpm={rpm}:tpm={tpm}:burst={burst}"
    return LimiterActor.options(name=name, namespace=NAMESPACE,
                                get_if_exists=True, lifetime="detached").remote(rpm, tpm, burst)


class RemoteLimiter:
    """A harness-side client of :class:`LimiterActor` that leases permits in batches."""

    def __init__(self, handle: Any, *, lease_size: int = 1) -> None:
        self.handle = handle
        self.lease_size = max(1, lease_size)
        self._permits = 0
        self._lock = asyncio.Lock()

    async def acquire(self, tokens: int = 0) -> None:
        async with self._lock:
            if self._permits == 0:
                self._permits = await self.handle.lease.remote(self.lease_size, tokens)
            self._permits -= 1
