"""SandboxActor: hosts environments in its own process and serves their sessions."""

from __future__ import annotations

import os
import socket
from typing import Any

import ray

from hud_ray.errors import ActorLost
from hud_ray.sandbox import Sandbox, load_environments
from hud_ray.task import Task
from hud_ray.types import Grade, Prompt


@ray.remote(num_cpus=0, max_restarts=0)
class SandboxActor:
    """One sandbox process. Stateful envs run one session at a time on it."""

    def __init__(self, sources: dict[str, str]) -> None:
        # Only the environments this actor's pool serves (a file may define others).
        envs = load_environments(sources)
        self.sandbox = Sandbox({n: e for n, e in envs.items() if n in sources})

    async def setup(self) -> dict[str, Any]:
        await self.sandbox.setup()
        return {"pid": os.getpid(), "host": socket.gethostname(), **self.sandbox.manifest()}

    async def start(self, task: dict[str, Any]) -> Prompt:
        return await self.sandbox.start(Task.model_validate(task))

    async def grade(self, session_id: str, answer: str | None) -> Grade:
        return await self.sandbox.grade(session_id, answer)

    async def solve(self, session_id: str) -> Any:
        return await self.sandbox.solve(session_id)

    async def cancel(self, session_id: str) -> None:
        await self.sandbox.cancel(session_id)

    def ping(self) -> int:
        return self.sandbox.active_sessions

    async def close(self) -> None:
        await self.sandbox.close()


class RemoteSandbox:
    """The sandbox contract over a :class:`SandboxActor` handle; a dead actor is ActorLost."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle

    async def _call(self, method: str, *args: Any) -> Any:
        try:
            return await getattr(self.handle, method).remote(*args)
        except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as exc:
            raise ActorLost(f"sandbox actor died during {method}: {type(exc).__name__}") from None
        except ray.exceptions.RayTaskError as exc:
            cause = exc.cause if isinstance(exc.cause, BaseException) else None
            if cause is not None:
                raise cause from None  # the sandbox's own typed error, without Ray's framing
            raise

    async def start(self, task: Task) -> Prompt:
        return await self._call("start", task.model_dump(mode="json"))

    async def grade(self, session_id: str, answer: str | None) -> Grade:
        return await self._call("grade", session_id, answer)

    async def solve(self, session_id: str) -> Any:
        return await self._call("solve", session_id)

    async def cancel(self, session_id: str) -> None:
        await self._call("cancel", session_id)
