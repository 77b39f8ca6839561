"""Warm sandbox pools: lease a sandbox actor per rollout, reuse it, replace it on death."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import ray

from actors.sandbox import RemoteSandbox, SandboxActor
from hud_ray.env import Environment
from hud_ray.errors import ActorLost, PlacementError
from hud_ray.placement import describe, merge, ray_options
from hud_ray.task import Task

log = logging.getLogger(__name__)


class _Starting:
    """An actor being started, and how many of its extra session slots are spoken for."""

    def __init__(self, spare: int) -> None:
        self.spare = spare
        self.future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()


@dataclass
class _Actor:
    """Book-keeping for one live actor: sessions leased on it, and whether it drains."""

    handle: Any
    live: int = 0
    draining: bool = False


class SandboxPool:
    """Per-harness pool of warm :class:`SandboxActor` processes.

    Each actor offers ``capacity`` session slots: 1 for environments whose per-rollout
    state is not known to be isolated, more when every resource of the environment
    isolates its sessions itself (an ssh workspace runs each rollout in its own
    sandbox). A lease takes a free slot (health-checking an actor that sat idle), joins
    an actor that is still starting, or starts a new one; release frees the slot.

    An actor a rollout found unhealthy (or one more than ``max_idle`` actors' worth of
    free slots) *drains*: it gets no new leases and is killed when its last live session
    ends, so the other rollouts on it finish undisturbed. An actor that is really dead
    (its ping fails with an actor error) is dropped at once. The pool only keeps
    book-keeping for actors that are alive, so it stays bounded however many it replaces.

    Actors are spread over the nodes that fit them (Ray's ``SPREAD``). An actor with no
    live session for ``idle_ttl`` seconds is released: the pools of
    other harnesses may need its resources (after a node loss, idle actors hoarded by
    one pool left another's new actor pending forever). An actor that no node takes
    within ``placement_timeout`` seconds fails its leases with :class:`PlacementError`
    (a typed row, not a hang).
    """

    def __init__(self, sources: dict[str, str], *, actor_options: dict[str, Any] | None = None,
                 capacity: int = 1, max_idle: int = 64,
                 health_check_after: float = 30.0, idle_ttl: float | None = 10.0,
                 request: dict[str, float] | None = None,
                 placement_timeout: float | None = None) -> None:
        self.sources = sources
        self.request = dict(request or {})
        self.placement_timeout = placement_timeout
        # Spread over the nodes that fit (a lost node then takes only its share).
        self.actor_options = {"scheduling_strategy": "SPREAD", **ray_options(self.request),
                              **(actor_options or {})}
        self.capacity = max(1, capacity)
        self.max_idle = max_idle
        self.health_check_after = health_check_after
        self.idle_ttl = idle_ttl
        self._reaper: asyncio.Task[None] | None = None
        self._free: list[tuple[Any, float]] = []  # one entry per free slot
        self._starting: list[_Starting] = []
        self._actors: dict[Any, _Actor] = {}  # live actors only
        self.started = 0
        self.replaced = 0
        self.leases = 0

    async def _new(self) -> Any:
        handle = SandboxActor.options(  # type: ignore[attr-defined]
            **self.actor_options).remote(self.sources)
        try:
            if self.placement_timeout is not None:
                await self._placed(handle, self.placement_timeout)
            await handle.setup.remote()
        except ray.exceptions.RayActorError as exc:
            self._terminate(handle)
            raise ActorLost(f"sandbox actor failed to start: {type(exc).__name__}") from None
        self.started += 1
        return handle

    async def _placed(self, handle: Any, timeout: float) -> None:
        """Wait until a node runs the new actor (its constructor returned), or give up."""
        ping = handle.ping.remote()
        try:
            await asyncio.wait_for(asyncio.shield(ping), timeout)
        except TimeoutError:
            self._terminate(handle)  # cancels the pending actor
            raise PlacementError(f"sandbox actor not placed within {timeout:g} s: "
                                 f"{describe(self.request)}") from None

    async def _take(self) -> Any:
        while self._free:
            candidate, since = self._free.pop()
            entry = self._actors.get(candidate)
            if entry is None or entry.draining:
                continue
            if time.monotonic() - since > self.health_check_after:
                try:
                    await asyncio.wait_for(candidate.ping.remote(), 10)
                except ray.exceptions.RayActorError:
                    self._drop(entry)  # dead: its sessions are lost whatever we do
                    continue
                except Exception:
                    self._drain(entry)  # unresponsive: no new sessions on it
                    continue
                if entry.draining or self._actors.get(candidate) is not entry:
                    continue  # drained or dropped while we waited for the ping
            entry.live += 1
            return candidate
        for starting in self._starting:
            if starting.spare > 0:
                starting.spare -= 1
                try:
                    return await asyncio.shield(starting.future)  # counted by the starter
                except asyncio.CancelledError:
                    self._unjoin(starting)
                    raise
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
        joined = self.capacity - 1 - starting.spare
        self._actors[handle] = _Actor(handle, live=1 + joined)
        starting.future.set_result(handle)
        now = time.monotonic()
        self._free.extend((handle, now) for _ in range(starting.spare))
        return handle

    async def lease(self, task: Task) -> tuple[RemoteSandbox, Callable[[bool], Awaitable[None]]]:
        self.leases += 1
        if self.idle_ttl is not None and self._reaper is None:
            self._reaper = asyncio.create_task(self._reap_idle(self.idle_ttl))
        handle = await self._take()
        released = False

        async def release(healthy: bool) -> None:
            nonlocal released
            if released:
                return
            released = True
            entry = self._actors.get(handle)
            if entry is None:
                return  # already dropped as dead
            entry.live -= 1
            if not healthy and not entry.draining:
                self.replaced += 1
                self._drain(entry)
            elif entry.draining:
                self._retire_if_idle(entry)
            elif len(self._free) < self.max_idle * self.capacity:
                self._free.append((handle, time.monotonic()))
            else:
                self._drain(entry)  # too many idle slots: retire this actor

        return RemoteSandbox(handle), release

    async def _reap_idle(self, ttl: float) -> None:
        """Release actors whose every slot has been free for ``ttl`` seconds."""
        while True:
            await asyncio.sleep(max(0.1, ttl / 4))
            newest: dict[Any, float] = {}
            for handle, since in self._free:
                newest[handle] = max(since, newest.get(handle, 0.0))
            cutoff = time.monotonic() - ttl
            for handle, since in newest.items():
                entry = self._actors.get(handle)
                if entry is not None and entry.live <= 0 and since < cutoff:
                    self._drop(entry)

    def _unjoin(self, starting: _Starting) -> None:
        """A rollout waiting for a starting actor was cancelled: give its slot back."""
        future = starting.future
        if not future.done():
            starting.spare += 1
            return
        if future.cancelled() or future.exception() is not None:
            return
        entry = self._actors.get(future.result())
        if entry is None:
            return
        entry.live -= 1
        if entry.draining:
            self._retire_if_idle(entry)
        else:
            self._free.append((entry.handle, time.monotonic()))

    def _drain(self, entry: _Actor) -> None:
        """No new leases on this actor; kill it once its last live session ends."""
        entry.draining = True
        self._free = [(h, t) for h, t in self._free if h is not entry.handle]
        self._retire_if_idle(entry)

    def _retire_if_idle(self, entry: _Actor) -> None:
        if entry.live <= 0:
            self._drop(entry)

    def _drop(self, entry: _Actor) -> None:
        """Forget the actor and kill it."""
        if self._actors.get(entry.handle) is entry:
            del self._actors[entry.handle]
        self._free = [(h, t) for h, t in self._free if h is not entry.handle]
        self._terminate(entry.handle)

    @staticmethod
    def _terminate(handle: Any) -> None:
        try:
            ray.kill(handle, no_restart=True)
        except Exception:
            log.debug("killing sandbox actor failed", exc_info=True)

    async def close(self) -> None:
        """Close and kill every actor of the pool (the harness is shutting down)."""
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
        entries, self._actors, self._free = list(self._actors.values()), {}, []

        async def close_one(entry: _Actor) -> None:
            try:
                await asyncio.wait_for(entry.handle.close.remote(), 10)
            except Exception:
                pass
            self._terminate(entry.handle)

        await asyncio.gather(*(close_one(e) for e in entries))

    def stats(self) -> dict[str, int]:
        return {"free_slots": len(self._free), "started": self.started, "replaced": self.replaced,
                "leases": self.leases, "actors": len(self._actors),
                "draining": sum(e.draining for e in self._actors.values()),
                "live_sessions": sum(e.live for e in self._actors.values())}


class SandboxPools:
    """One :class:`SandboxPool` per distinct placement among a harness's pooled
    environments; a lease goes to the pool of the task's environment.

    ``options`` is the run's wire dict: ``request`` (the run's ``sandbox_resources``,
    checked) and ``placement_timeout`` (seconds). Each environment's sandbox actors
    request ``merge(env.placement, request)`` and load only that pool's environments.
    """

    def __init__(self, envs: dict[str, Environment], sources: dict[str, str], *,
                 options: dict[str, Any] | None = None, sessions_per_sandbox: int = 8) -> None:
        options = options or {}
        run_request = options.get("request") or {}
        groups: dict[tuple[tuple[str, float], ...], list[str]] = {}
        for name, env in envs.items():
            key = tuple(sorted(merge(env.placement, run_request).items()))
            groups.setdefault(key, []).append(name)
        self.pools: dict[str, SandboxPool] = {}
        for key, names in groups.items():
            capacity = sessions_per_sandbox if all(envs[n].isolates_sessions for n in names) \
                else 1
            pool = SandboxPool({n: sources[n] for n in names}, capacity=capacity,
                               request=dict(key),
                               placement_timeout=options.get("placement_timeout"))
            self.pools.update(dict.fromkeys(names, pool))

    def _unique(self) -> list[SandboxPool]:
        return list({id(p): p for p in self.pools.values()}.values())

    async def lease(self, task: Task) -> tuple[RemoteSandbox, Callable[[bool], Awaitable[None]]]:
        return await self.pools[task.env].lease(task)

    async def close(self) -> None:
        await asyncio.gather(*(p.close() for p in self._unique()))

    def stats(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for pool in self._unique():
            for key, value in pool.stats().items():
                total[key] = total.get(key, 0) + value
        return total
