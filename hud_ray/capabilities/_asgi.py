"""Serving an ASGI app with uvicorn inside a sandbox process (MCP servers, web apps)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from typing import Any

from hud_ray.errors import CapabilityError

START_TIMEOUT = 30.0


def _server_class() -> type:
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:  # the host process owns its signals
            yield

        def install_signal_handlers(self) -> None:  # older uvicorn
            return None

    return Server


class ServedApp:
    """One uvicorn server on a socket this process binds; ``start`` returns its port."""

    def __init__(self) -> None:
        self._server: Any = None
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None

    async def start(self, app: Any, host: str, port: int = 0, *, what: str,
                    **config: Any) -> int:
        import uvicorn

        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
        options = {"log_level": "warning", "access_log": False, **config}
        self._server = _server_class()(uvicorn.Config(app, **options))
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        deadline = asyncio.get_running_loop().time() + START_TIMEOUT
        while not self._server.started:
            if self._task.done() or asyncio.get_running_loop().time() > deadline:
                await self.stop()
                raise CapabilityError(f"{what} failed to start")
            await asyncio.sleep(0.01)
        return int(sock.getsockname()[1])

    async def stop(self) -> None:
        if self._task is None:
            return
        self._server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), 5)
        except Exception:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        self._task = None
