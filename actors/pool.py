"""Warm sandbox pools: lease a sandbox actor per rollout, reuse it, replace it on death."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import ray

from actors.sandbox import RemoteSandbox, SandboxActor
from hud_ray.errors import ActorLost
from hud_ray.task import Task

log = logging.getLogger(__name__)


class SandboxPool:
    """Per-harness pool of warm :class:`SandboxActor` processes.

    A lease hands out an idle actor (health-checked if it sat idle a while) or starts
    a new one; release returns it to the idle list, or kills it when the rollout found
    it unhealthy, so the next rollout gets a fresh sandbox.
    """

    def __init__(self, sources: dict[str, str], *, actor_options: dict[str, Any] | None = None,
                 max_idle: int = 64, health_check_after: float = 30.0) -> None:
        self.sources = sources
        self.actor_options = actor_options or {}
        self.max_idle = max_idle
        self.health_check_after = health_check_after
        self._idle: list[tuple[Any, float]] = []
        self.started = 0
        self.replaced = 0
        self.leases = 0

    async def _new(self) -> Any:
        handle = SandboxActor.options(**self.actor_options).remote(self.sources)
        try:
            await handle.setup.remote()
        except ray.exceptions.RayActorError as exc:
            raise ActorLost(f"sandbox actor failed to start: {exc}"[:500]) from None
        self.started += 1
        return handle

    async def lease(self, task: Task) -> tuple[RemoteSandbox, Callable[[bool], Awaitable[None]]]:
        self.leases += 1
        handle = None
        while self._idle and handle is None:
            candidate, since = self._idle.pop()
            if time.monotonic() - since > self.health_check_after:
                try:
                    await asyncio.wait_for(candidate.ping.remote(), 10)
                except Exception:
                    self._kill(candidate)
                    continue
            handle = candidate
        if handle is None:
            handle = await self._new()

        async def release(healthy: bool) -> None:
            if healthy and len(self._idle) < self.max_idle:
                self._idle.append((handle, time.monotonic()))
            else:
                if not healthy:
                    self.replaced += 1
                self._kill(handle)

        return RemoteSandbox(handle), release

    def _kill(self, handle: Any) -> None:
        try:
            ray.kill(handle, no_restart=True)
        except Exception:
            log.debug("killing sandbox actor failed", exc_info=True)

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for handle, _ in idle:
            try:
                await asyncio.wait_for(handle.close.remote(), 10)
            except Exception:
                pass
            self._kill(handle)

    def stats(self) -> dict[str, int]:
        return {"idle": len(self._idle), "started": self.started, "replaced": self.replaced,
                "leases": self.leases}
