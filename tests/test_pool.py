"""The warm sandbox pool on real Ray, with several sessions per sandbox actor."""

from __future__ import annotations

import asyncio
import time

import pytest

from hud_ray import Taskset
from hud_ray.errors import ActorLost

pytestmark = pytest.mark.ray


@pytest.fixture
def stateful(fixtures):
    ts = Taskset.from_file(fixtures / "stateful.py")
    return ts.sources, list(ts)


def _alive(ray, handle) -> bool:
    try:
        ray.get(handle.ping.remote(), timeout=30)
        return True
    except ray.exceptions.RayActorError:
        return False


async def _until_dead(ray, handle, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while _alive(ray, handle):
        assert time.monotonic() < deadline, "sandbox actor still alive"
        await asyncio.sleep(0.2)


async def test_unhealthy_rollout_drains_its_actor_without_killing_the_others(ray_session,
                                                                           stateful):
    """Three rollouts share an actor; one finds it unhealthy. The other two finish on it;
    new rollouts go to a new actor; the old one is killed when its last session ends."""
    from actors.pool import SandboxPool

    sources, tasks = stateful
    pool = SandboxPool(sources, capacity=3)
    try:
        leases = [await pool.lease(tasks[i]) for i in range(3)]
        first = leases[0][0].handle
        assert all(sb.handle == first for sb, _ in leases)  # one actor, three sessions
        prompts = [await sb.start(tasks[i]) for i, (sb, _) in enumerate(leases)]

        await leases[0][1](False)  # rollout 0 found the actor unhealthy
        assert _alive(ray_session, first)
        for i in (1, 2):  # the other rollouts on it finish normally
            sb, _ = leases[i]
            grade = await sb.grade(prompts[i].session_id, str(tasks[i].args["n"]))
            assert grade.reward == 1.0

        fresh, release_fresh = await pool.lease(tasks[3])
        assert fresh.handle != first  # the draining actor takes no new rollouts
        assert pool.stats()["draining"] == 1

        await leases[1][1](True)
        assert _alive(ray_session, first)  # rollout 2 still runs on it
        await leases[2][1](True)
        await _until_dead(ray_session, first)  # the last session ended: now it goes
        assert pool.stats()["actors"] == 1 and pool.stats()["draining"] == 0
        await release_fresh(True)
        await leases[2][1](True)  # a second release of the same lease is ignored
        assert pool.stats()["live_sessions"] == 0
    finally:
        await pool.close()


async def test_bookkeeping_stays_bounded_through_many_replacements(ray_session, stateful):
    from actors.pool import SandboxPool

    sources, tasks = stateful
    pool = SandboxPool(sources, capacity=2)
    try:
        for _ in range(6):
            sandbox, release = await pool.lease(tasks[0])
            await release(False)
            stats = pool.stats()
            assert stats["actors"] == 0 and stats["free_slots"] == 0, stats
            await _until_dead(ray_session, sandbox.handle)
        assert pool.started == 6 and pool.replaced == 6
        assert len(pool.__dict__.get("_dead", ())) == 0
    finally:
        await pool.close()


async def test_really_dead_idle_actor_is_dropped_and_replaced(ray_session, stateful):
    from actors.pool import SandboxPool

    sources, tasks = stateful
    pool = SandboxPool(sources, capacity=2, health_check_after=0)
    try:
        sandbox, release = await pool.lease(tasks[0])
        await release(True)
        ray_session.kill(sandbox.handle, no_restart=True)
        await _until_dead(ray_session, sandbox.handle)
        again, release_again = await pool.lease(tasks[1])
        assert again.handle != sandbox.handle
        prompt = await again.start(tasks[1])
        assert (await again.grade(prompt.session_id, str(tasks[1].args["n"]))).reward == 1.0
        await release_again(True)
        assert pool.stats()["actors"] == 1
    finally:
        await pool.close()


async def test_a_session_on_a_dead_actor_is_actor_lost_and_the_pool_recovers(ray_session,
                                                                             stateful):
    """The actor dies under two live sessions: both see ActorLost, both release it as
    unhealthy, and the pool forgets it once the last one does."""
    from actors.pool import SandboxPool

    sources, tasks = stateful
    pool = SandboxPool(sources, capacity=2)
    try:
        (a, release_a), (b, release_b) = [await pool.lease(tasks[i]) for i in range(2)]
        assert a.handle == b.handle
        prompt = await a.start(tasks[0])
        ray_session.kill(a.handle, no_restart=True)
        with pytest.raises(ActorLost):
            await a.grade(prompt.session_id, "0")
        await release_a(False)
        await release_b(False)
        assert pool.stats()["actors"] == 0
        c, release_c = await pool.lease(tasks[2])
        assert c.handle != a.handle
        await release_c(True)
    finally:
        await pool.close()


async def test_cancelled_waiter_gives_its_slot_back(ray_session, stateful):
    """A rollout cancelled while waiting for a starting actor must not leave its slot
    counted as live, or the actor could never be retired."""
    from actors.pool import SandboxPool

    sources, tasks = stateful
    pool = SandboxPool(sources, capacity=3)
    try:
        starter = asyncio.create_task(pool.lease(tasks[0]))
        await asyncio.sleep(0)  # the starter is starting the actor
        waiter = asyncio.create_task(pool.lease(tasks[1]))
        await asyncio.sleep(0)
        waiter.cancel()
        sandbox, release = await starter
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert pool.stats()["live_sessions"] == 1 and pool.stats()["free_slots"] == 2
        await release(False)
        await _until_dead(ray_session, sandbox.handle)
        assert pool.stats()["actors"] == 0
    finally:
        await pool.close()


async def test_idle_actors_are_released_so_another_pool_can_place_its_own(ray_session,
                                                                        stateful):
    """Two harnesses' pools compete for a finite resource (here: the session's 2 CPUs).
    Pool A's idle actors hold both; pool B's new actor cannot be placed until A lets
    its idle actors go. (A cluster that lost a sandbox node hung exactly like this.)"""
    from actors.pool import SandboxPool

    sources, tasks = stateful
    a = SandboxPool(sources, actor_options={"num_cpus": 1}, idle_ttl=1.0)
    b = SandboxPool(sources, actor_options={"num_cpus": 1}, idle_ttl=1.0)
    try:
        leases = [await a.lease(tasks[i]) for i in range(2)]
        for _, release in leases:
            await release(True)
        assert a.stats()["actors"] == 2  # warm and idle, holding both CPUs
        sb, release = await asyncio.wait_for(b.lease(tasks[2]), 30)
        prompt = await sb.start(tasks[2])
        grade = await sb.grade(prompt.session_id, str(tasks[2].args["n"]))
        assert grade.reward == 1.0
        await release(True)
        assert a.stats()["actors"] <= 1
    finally:
        await a.close()
        await b.close()
