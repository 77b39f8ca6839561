"""HarnessActor: runs many agent loops concurrently and streams their rows back."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from typing import Any

import ray

from actors.pool import SandboxPools
from hud_ray.engine.plan import RolloutSpec
from hud_ray.engine.worker import RolloutWorker
from hud_ray.sandbox import Sandbox, load_environments
from hud_ray.tasktable import SharedTaskTable, TaskTable, process_memory
from hud_ray.types import AgentSpec


@ray.remote(num_cpus=0, max_restarts=0, max_concurrency=100_000)  # type: ignore[call-overload]
class HarnessActor:
    """Hosts one agent; stateless envs are co-located in this process, stateful ones
    (with a workspace) lease a dedicated sandbox actor per rollout from a warm pool."""

    def __init__(self, *, run_id: str, sources: dict[str, str], task_table: SharedTaskTable,
                 table: Any,
                 agent: dict[str, Any], rollout_timeout: float | None, colocate: bool = True,
                 sandbox_options: dict[str, Any] | None = None, name: str = "",
                 sessions_per_sandbox: int = 8) -> None:
        os.environ.setdefault("HUD_RAY_IN_ACTOR", "1")
        envs = load_environments(sources)
        local = {n: e for n, e in envs.items() if colocate and e.colocatable}
        self.sandbox = Sandbox(local) if local else None
        pooled = {n: e for n, e in envs.items() if n not in local and n in sources}
        self.pool = SandboxPools(pooled, sources, options=sandbox_options,
                                 sessions_per_sandbox=sessions_per_sandbox) if pooled else None
        # the run's one task table: ``table`` is ``task_table.ref`` passed as a top-level
        # argument, so Ray resolves it (zero-copy, from the object store) before __init__
        # runs, without a blocking get inside this async actor
        self.task_table = task_table
        self.worker = RolloutWorker(
            run_id=run_id, tasks=TaskTable(table),
            agent=AgentSpec.model_validate(agent), rollout_timeout=rollout_timeout,
            sandbox=self.sandbox, local_envs=set(local),
            lease=self.pool.lease if self.pool else None,
            worker_name=name or f"{socket.gethostname()}:{os.getpid()}")
        self.limiter = self._attach_limiter(self.worker.agent, run_id)

    @staticmethod
    def _attach_limiter(agent: Any, run_id: str) -> Any:
        """Share one rpm/tpm bucket per provider+model across every harness actor of the run."""
        from hud_ray.limits import LimitSettings

        limits = LimitSettings.parse(agent.spec.config.model_extra or {})
        if limits is None or not hasattr(agent, "limiter"):
            return None
        from actors.limiter import RemoteLimiter, get_or_create_limiter

        key = f"{agent.spec.name}:{agent.spec.base_url or ''}:{agent.spec.model or ''}"
        args = (key, limits.rpm, limits.tpm, limits.burst, limits.token_burst)
        agent.limiter = RemoteLimiter(
            get_or_create_limiter(*args, run_id=run_id), lease_size=limits.lease,
            count_tokens=limits.tpm is not None,
            reconnect=lambda: get_or_create_limiter(*args, run_id=run_id))
        return agent.limiter

    async def ready(self) -> dict[str, Any]:
        if self.sandbox is not None:
            await self.sandbox.setup()
        return {"pid": os.getpid(), "node": ray.get_runtime_context().get_node_id()}

    async def run_stream(self, specs: list[RolloutSpec]) -> AsyncIterator[list[dict[str, Any]]]:
        async for batch in self.worker.run_stream(specs):
            yield batch

    def stats(self) -> dict[str, Any]:
        return {"pool": self.pool.stats() if self.pool else None,
                "task_table": {"ref": self.task_table.ref.hex(), "rows": len(self.worker.tasks)},
                "memory": process_memory()}

    async def close(self) -> None:
        await self.worker.close()
        if self.limiter is not None:
            await self.limiter.close()
        if self.pool is not None:
            await self.pool.close()
