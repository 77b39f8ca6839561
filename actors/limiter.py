"""One shared rate limiter per run and provider+model, as a named Ray actor.

The actor is not detached: it belongs to the harness actor that created it (the first of
the run to need it) and dies with it, so nothing outlives the run. Every harness actor of
the run finds it by name; a client whose limiter died makes a new one and carries on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import ray

from hud_ray.errors import LimiterLost, one_line
from hud_ray.limits import RateLimiter

log = logging.getLogger(__name__)

NAMESPACE = "hud_ray"
PREFIX = "limiter:"


@ray.remote(num_cpus=0, max_concurrency=10_000, max_restarts=0)  # type: ignore[call-overload]
class LimiterActor:
    def __init__(self, rpm: float | None, tpm: float | None, burst: float | None,
                 token_burst: float | None = None) -> None:
        self.limiter = RateLimiter(rpm, tpm, burst=burst, token_burst=token_burst)

    async def lease(self, permits: int, tokens: int) -> int:
        await self.limiter.acquire(tokens, permits)
        return permits

    def charge(self, tokens: float) -> None:
        self.limiter.charge(tokens)

    def stats(self) -> dict[str, float]:
        level = self.limiter.tokens.level if self.limiter.tokens is not None else 0.0
        return {"granted": self.limiter.granted, "tokens_charged": self.limiter.tokens_charged,
                "token_level": level}

    def granted(self) -> int:
        return self.limiter.granted


def limiter_name(key: str, rpm: float | None, tpm: float | None, burst: float | None = None,
                 token_burst: float | None = None, *, run_id: str = "") -> str:
    return (f"{PREFIX}{run_id}:{key}:rpm={rpm}:tpm={tpm}:burst={burst}"
            f":token_burst={token_burst}")


def get_or_create_limiter(key: str, rpm: float | None, tpm: float | None,
                          burst: float | None = None, token_burst: float | None = None, *,
                          run_id: str = "") -> Any:
    """The limiter actor for ``key`` (e.g. ``openai_compatible:<url>:my-model``) in a run.

    Created by (and owned by) the first caller; every later caller gets the same actor.
    """
    name = limiter_name(key, rpm, tpm, burst, token_burst, run_id=run_id)
    return LimiterActor.options(name=name, namespace=NAMESPACE,  # type: ignore[attr-defined]
                                get_if_exists=True).remote(rpm, tpm, burst, token_burst)


class RemoteLimiter:
    """A harness-side client of :class:`LimiterActor` that leases permits in batches.

    Request permits come ``lease_size`` at a time. With a tokens/min limit
    (``count_tokens``) each call's estimate is charged as the call is admitted (a batch
    lease charges one estimate per permit) and :meth:`record` settles the difference to
    the real usage: a shortfall is charged to the actor at once, a surplus is kept to
    pay for this client's next calls. ``reconnect`` makes a new limiter actor when the
    current one died; if that fails too the call fails with a retryable
    :class:`~hud_ray.errors.LimiterLost`.
    """

    def __init__(self, handle: Any, *, lease_size: int = 1, count_tokens: bool = True,
                 reconnect: Callable[[], Any] | None = None) -> None:
        self.handle = handle
        self.lease_size = max(1, lease_size)
        self.count_tokens = count_tokens
        self.reconnect = reconnect
        self._permits = 0
        self._credit = 0  # tokens charged to the actor, not yet spent by a call
        self._largest = 0  # the largest estimate seen: bounds the credit kept
        self._lock = asyncio.Lock()
        self._pending: set[asyncio.Future[Any]] = set()

    async def acquire(self, tokens: int = 0) -> None:
        tokens = max(0, int(tokens)) if self.count_tokens else 0
        async with self._lock:
            # a loop: a debt settled while we wait for the actor can eat the credit again
            while self._permits == 0 or self._credit < tokens:
                permits = self.lease_size if self._permits == 0 else 0
                want = max(0, tokens - self._credit)
                if want and permits > 1:
                    want += tokens * (permits - 1)  # the rest of the batch, one estimate each
                await self._lease(permits, want)
                self._permits += permits
                self._credit += want
            self._permits -= 1
            self._credit -= tokens
            self._largest = max(self._largest, tokens)

    def record(self, estimated: int, actual: int) -> None:
        """Settle a call admitted with ``estimated`` tokens that used ``actual`` (0: unknown)."""
        if not self.count_tokens or actual <= 0:
            return
        self._credit += estimated - actual
        keep = self._largest * self.lease_size
        if self._credit < 0:
            self._send(-self._credit)  # debt: later calls anywhere in the run wait it off
            self._credit = 0
        elif self._credit > keep:
            self._send(keep - self._credit)  # give back what this client will not need
            self._credit = keep

    async def close(self) -> None:
        """Wait for settlements still on their way to the actor."""
        if self._pending:
            await asyncio.wait(self._pending, timeout=5)

    def _send(self, tokens: float) -> None:
        future = asyncio.ensure_future(self._charge(self.handle, tokens))
        self._pending.add(future)
        future.add_done_callback(self._pending.discard)

    @staticmethod
    async def _charge(handle: Any, tokens: float) -> None:
        try:
            await handle.charge.remote(tokens)
        except ray.exceptions.RayActorError:
            log.debug("rate limiter gone; a settlement of %s tokens is dropped", tokens)

    async def _lease(self, permits: int, tokens: int) -> None:
        try:
            await self.handle.lease.remote(permits, tokens)
            return
        except ray.exceptions.RayActorError as exc:
            last = exc
        if self.reconnect is not None:
            log.warning("rate limiter actor died (%s); starting a new one",
                        one_line(str(last), 200))
            for delay in (0.0, 0.2, 1.0):  # the dead actor's name is freed asynchronously
                await asyncio.sleep(delay)
                try:
                    self.handle = self.reconnect()
                    await self.handle.lease.remote(permits, tokens)
                    return
                except ray.exceptions.RayActorError as exc:
                    last = exc
        raise LimiterLost("rate limiter actor died: " + one_line(str(last), 300)) from None
