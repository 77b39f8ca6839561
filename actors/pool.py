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


class _Starting:
    """An actor being started, and how many of its extra session slots are spoken for."""

    def __init__(self, spare: int) -> None:
        self.spare = spare
        self.future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()


class SandboxPool:
    """Per-harness pool of warm :class:`SandboxActor` processes.

    Each actor offers ``capacity`` session slots: 1 for environments whose per-rollout
    state is not known to be isolated, more when every resource of the environment
    isolates its sessions itself (an ssh workspace runs each rollout in its own
    sandbox). A lease takes a free slot (health-checking an actor that sat idle), joins
    an actor that is still starting, or starts a new one; release frees the slot, or
    kills the actor when the rollout found it unhealthy, so later rollouts get a fresh one.
    """

    def __init__(self, sources: dict[str, str], *, actor_options: dict[str, Any] | None = None,
                 capacity: int = 1, max_idle: int = 64,
                 health_check_after: float = 30.0) -> None:
        self.sources = sources
        self.actor_options = actor_options or {}
        self.capacity = max(1, capacity)
        self.max_idle = max_idle
        self.health_check_after = health_check_after
        self._free: list[tuple[Any, float]] = []  # one entry per free slot
        self._starting: list[_Starting] = []
        self._dead: set[Any] = set()
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

    async def _take(self) -> Any:
        while self._free:
            candidate, since = self._free.pop()
            if candidate in self._dead:
                continue
            if time.monotonic() - since > self.health_check_after:
                try:
                    await asyncio.wait_for(candidate.ping.remote(), 10)
                except Exception:
                    self._kill(candidate)
                    continue
            return candidate
        for starting in self._starting:
            if starting.spare > 0:
                starting.spare -= 1
                return await asyncio.shield(starting.future)
        starting = _Starting(self.capacity - 1)
        self._starting.append(starting)
        try:
            handle = await self._new()
        except BaseException as exc:
            starting.future.set_exception(exc if isinstance(exc, Exception) else
                                          ActorLost("sandbox start cancelled"))
            starting.future.exception()  # retrieved: waiters re-raise it themselves
            raise
        finally:
            self._starting.remove(starting)
        starting.future.set_result(handle)
        now = time.monotonic()
        self._free.extend((handle, now) for _ in range(starting.spare))
        return handle

    async def lease(self, task: Task) -> tuple[RemoteSandbox, Callable[[bool], Awaitable[None]]]:
        self.leases += 1
        handle = await self._take()

        async def release(healthy: bool) -> None:
            if handle in self._dead:
                return
            if not healthy:
                self.replaced += 1
                self._kill(handle)
            elif len(self._free) < self.max_idle * self.capacity:
                self._free.append((handle, time.monotonic()))
            elif not any(h is handle for h, _ in self._free):
                self._kill(handle)

        return RemoteSandbox(handle), release

    def _kill(self, handle: Any) -> None:
        self._dead.add(handle)
        self._free = [(h, t) for h, t in self._free if h is not handle]
        try:
            ray.kill(handle, no_restart=True)
        except Exception:
            log.debug("killing sandbox actor failed", exc_info=True)

    async def close(self) -> None:
        idle, self._free = self._free, []
        for handle in {h for h, _ in idle if h not in self._dead}:
            try:
                await asyncio.wait_for(handle.close.remote(), 10)
            except Exception:
                pass
            self._kill(handle)

    def stats(self) -> dict[str, int]:
        return {"free_slots": len(self._free), "started": self.started, "replaced": self.replaced,
                "leases": self.leases}
